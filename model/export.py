"""`fintag export`: a trained checkpoint as an ONNX folder that onnxruntime (or Triton's onnxruntime
backend) serves without fintag or torch.

The folder holds `model.onnx` (fp32, attention and layer norms fused into onnxruntime operators),
`model.int8.onnx` (dynamic int8, unless `--int8 false`), the tokenizer (`tokenizer.json` …), `config.json`
with the label groups and tuned thresholds (`fintag_label_groups`, `fintag_thresholds`: how to decode the
twelve logits; with `fintag_ngram_blend`, the n-gram heads blended with them: `ngram.json`,
`ngram.safetensors`, `fintag.model.ngram`), and `export.json` (inputs, outputs, the torch-vs-onnxruntime
logit difference measured at export on the seed sentences). It is written atomically, and `Tagger.load` /
`fintag tag --model` / `fintag serve --model` accept it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintag.data.fsutil import atomic_directory
from fintag.model.backend import INT8_FILE, ONNX_FILE, write_onnx_files
from fintag.model.paths import DEFAULT_CHECKPOINT

# torch and onnxruntime are imported where they are used: `fintag export --help` stays fast.

logger = logging.getLogger(__name__)

ROUND_TRIP_TOLERANCE = 1e-3
CHECK_SENTENCES = (
    "投资评级:买入(维持)",
    "风险提示:AI发展不及预期,国产替代进度不及预期。",
    "小马智行已在港交所上市,Robotaxi车队规模持续扩大。",
    "We expect compute demand to keep growing in 2026.",
)


class ExportError(RuntimeError):
    """An export that failed its own check; nothing was written."""


@dataclass
class ExportConfig:
    model: str = field(
        default=DEFAULT_CHECKPOINT, metadata={"help": "trained checkpoint folder (or hub id) to export"}
    )
    out: str = field(default="artifacts/onnx", metadata={"help": "output folder (replaced atomically)"})
    int8: bool = field(default=True, metadata={"help": "also write model.int8.onnx (dynamic int8)"})
    allow_pickle: bool = field(default=False, metadata={"help": "allow pickled (.bin) weights you trust"})

    def __post_init__(self) -> None:
        if Path(self.out).resolve() == Path(self.model).resolve():
            raise ValueError("--out must differ from --model: the export replaces its folder")


def _max_logit_difference(model: Any, tokenizer: Any, graph: Path) -> float:
    from fintag.model.inference import batched_logits
    from fintag.model.onnx import OnnxModel, session

    texts = list(CHECK_SENTENCES)
    want = batched_logits(model, tokenizer, texts)
    got = batched_logits(OnnxModel(session(graph), model.config, str(graph)), tokenizer, texts)
    return float((want - got).abs().max())


def export(cfg: ExportConfig) -> dict[str, Any]:
    """Write the ONNX folder of `cfg.model` into `cfg.out`; returns the facts written to export.json."""
    import torch
    from fintag.model.checkpoint import load_tagger
    from fintag.model.onnx import INPUTS, OUTPUT

    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not (out / "export.json").is_file():
        raise ExportError(f"{out} exists and is not an earlier export (no export.json); pick another --out")
    loaded = load_tagger(cfg.model, allow_pickle=cfg.allow_pickle)
    model, tokenizer = loaded.model, loaded.tokenizer
    with atomic_directory(out) as tmp:
        facts = write_onnx_files(model, tmp, int8=cfg.int8)
        diff = _max_logit_difference(model, tokenizer, tmp / ONNX_FILE)
        if diff > ROUND_TRIP_TOLERANCE:
            raise ExportError(
                f"onnxruntime's logits differ from torch's by {diff:.2e} (> {ROUND_TRIP_TOLERANCE}); the "
                "export is not faithful: use --backend torch for this model and report it"
            )
        model.config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if loaded.blend is not None:
            loaded.blend.heads.save(tmp)  # the config's fintag_ngram_blend needs them
        facts = {
            "source": loaded.source,
            "files": [ONNX_FILE] + ([INT8_FILE] if cfg.int8 else []),
            "inputs": {name: "int64 [batch, sequence]" for name in INPUTS},
            "output": {OUTPUT: f"float32 [batch, {model.config.num_labels}]"},
            "max_abs_logit_difference_fp32": diff,
            "torch": torch.__version__,
            **facts,
        }
        (tmp / "export.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    logger.info("exported %s to %s (fp32 logits within %.1e of torch)", loaded.source, cfg.out, diff)
    return facts


def export_main(argv: list[str]) -> int:
    """`fintag export`: exit 0 on success, 1 when the checkpoint cannot be loaded or exported."""
    from fintag.cli.args import UsageError, parse_settings, report_usage_error

    try:
        (cfg,) = parse_settings((ExportConfig,), argv, "export")
    except UsageError as exc:
        return report_usage_error("export", exc)
    from fintag.model.checkpoint import CheckpointError
    from fintag.model.onnx import OnnxError

    try:
        export(cfg)
    except (CheckpointError, OnnxError, ExportError, OSError) as exc:
        logger.error("%s", exc)
        return 1
    return 0
