"""Tagging speed of every inference backend against the transformers pipeline, on one checkpoint.

Paths, each timed in turns (`--repeats` rounds, best time kept) on the same sentences (the seed reports'
sentences, in order, repeated to `--sentences`) with the same torch/onnxruntime thread count:

- `default`: `Tagger.load(model)` as `fintag tag` runs it (`fintag.model.backend.DEFAULT_CPU_BACKEND`,
  `DEFAULT_QUANTIZE`);
- `torch fp32`, `torch int8`, `torch bf16`, `onnx fp32`, `onnx int8`: `Tagger.load(model, backend=…,
  quantize=…)` (`torch bf16`: the torch model cast to bfloat16);
- the baseline `pipeline("text-classification", top_k=None, function_to_apply="none")` on the torch
  model, at batch size 1 and 32, its logits decoded with the project's label space.

Per path: sentences/s, the default's speed over it, the encoder's arithmetic on non-pad tokens per second
(GFLOP/s, `tagging_throughput.encoder_gflop`) and its fraction of this CPU's fp32 sgemm peak measured in
the same run (`tagging_throughput.sgemm_peak`), and label agreement with `torch fp32` per group.
Without `--model` it builds a random-weight model of multilingual-e5-small's shape (`common.py`): speed
does not depend on weights, agreement on random weights says little (logits nearly tie).

    python bench/inference_backends.py                               # random e5-small-shaped model
    python bench/inference_backends.py --model artifacts/run/model   # the trained default
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from common import as_bf16, build_e5_shape_model, corpus_sentences
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging
from fintag.data.taxonomy import TAXONOMY
from fintag.model import backend as backend_defaults
from fintag.serve.tagger import Tagger
from tagging_throughput import encoder_gflop, pipeline_predictions, repeat_to, sgemm_peak, timed

logger = logging.getLogger("fintag.bench")

REFERENCE = "torch fp32"
DEFAULT = "default"
GOALS = {"pipeline bs1": 3.0, "pipeline bs32": 1.5}
PEAK_GOAL = 0.4  # the fp32 path's fraction of the sgemm peak


@dataclass
class BackendBenchConfig:
    model: str | None = field(
        default=None, metadata={"help": "checkpoint folder; default: a random-weight e5-small-shaped model"}
    )
    sentences: int = field(
        default=673, metadata={"help": "sentences per path (the seed sentences, repeated)"}
    )
    paths: str = field(
        default="default,torch fp32,torch int8,torch bf16,onnx fp32,onnx int8,pipeline bs1,pipeline bs32",
        metadata={"help": "comma-separated paths to time"},
    )
    batch_size: int = field(default=16, metadata={"help": "Tagger sentences per forward pass"})
    max_tokens: int = field(default=2048, metadata={"help": "Tagger padded tokens per forward pass"})
    num_threads: int = field(default=0, metadata={"help": "threads for every path (0: all cores)"})
    repeats: int = field(default=1, metadata={"help": "timing rounds; each path's best time is kept"})


def _tagger(model: str, cfg: BackendBenchConfig, **kwargs: Any) -> Tagger:
    return Tagger.load(model, batch_size=cfg.batch_size, max_tokens=cfg.max_tokens, **kwargs)


Predict = Callable[[list[str]], Any]


def build_paths(model: str, cfg: BackendBenchConfig, reference: Tagger) -> dict[str, Predict]:
    """name -> function from sentences to predictions (dicts as `Tagger.tag` gives)."""
    from transformers import pipeline

    wanted = [p.strip() for p in cfg.paths.split(",") if p.strip()]
    makers: dict[str, Callable[[], Callable[[list[str]], Any]]] = {
        DEFAULT: lambda: _tagger(model, cfg).tag,
        REFERENCE: lambda: reference.tag,
        "torch int8": lambda: _tagger(model, cfg, backend="torch", quantize=True).tag,
        "torch bf16": lambda: as_bf16(_tagger(model, cfg, backend="torch", quantize=False)).tag,
        "onnx fp32": lambda: _tagger(model, cfg, backend="onnx", quantize=False).tag,
        "onnx int8": lambda: _tagger(model, cfg, backend="onnx", quantize=True).tag,
    }
    pipe = None
    out: dict[str, Callable[[list[str]], Any]] = {}
    for name in wanted:
        if name.startswith("pipeline bs"):
            bs = int(name.removeprefix("pipeline bs"))
            if pipe is None:
                pipe = pipeline(
                    "text-classification", model=reference.model, tokenizer=reference.tokenizer, top_k=None,
                    function_to_apply="none", device=-1,
                )  # fmt: skip
            out[name] = lambda texts, bs=bs, pipe=pipe: pipeline_predictions(
                pipe(texts, batch_size=bs, truncation=True, max_length=reference.max_length),
                reference.model.config,
                reference.thresholds,
            )
        elif name in makers:
            out[name] = makers[name]()
        else:
            raise SystemExit(f"unknown path {name!r}; choose from {', '.join([*makers, 'pipeline bsN'])}")
    return out


def agreement_per_group(ours: list[dict], theirs: list[dict]) -> dict[str, float]:
    """Per group: % of sentences whose label (themes: label set) is the same."""
    out: dict[str, float] = {}
    for g in TAXONOMY:
        key = "labels" if g.multi_label else "label"
        same = sum(a[g.name][key] == b[g.name][key] for a, b in zip(ours, theirs, strict=True))
        out[g.name] = 100.0 * same / len(ours)
    return out


def format_table(rows: list[dict[str, Any]], peak: float) -> str:
    rate = {r["path"]: r["sentences"] / r["seconds"] for r in rows}
    groups = [g.name for g in TAXONOMY]
    head = f"{'path':<14} {'sent/s':>8} {'default/this':>12} {'goal':>9} {'GFLOP/s':>8} {'of peak':>8} "
    head += " ".join(f"{'agree ' + g[:5]:>12}" for g in groups)
    lines = [head, "-" * len(head)]
    for r in rows:
        this = rate[r["path"]]
        ratio = rate[DEFAULT] / this if DEFAULT in rate else float("nan")
        goal = GOALS.get(r["path"])
        goal_txt = "" if goal is None else f">={goal:g} " + ("ok" if ratio >= goal else "NO")
        flops = r["gflop"] / r["seconds"]
        agree = " ".join(f"{r['agreement'][g]:>11.1f}%" if "agreement" in r else f"{'':>12}" for g in groups)
        cols = f"{r['path']:<14} {this:>8.1f} {ratio:>11.2f}x {goal_txt:>9} {flops:>8.1f}"
        cols += f" {flops / peak:>8.2f}"
        lines.append(f"{cols} {agree}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    setup_logging()
    (cfg,) = parse_settings((BackendBenchConfig,), argv, Path(__file__).name)
    threads = cfg.num_threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    seeds = corpus_sentences()
    texts = repeat_to(seeds, cfg.sentences)
    with tempfile.TemporaryDirectory(prefix="fintag-bench-") as tmp:
        model = cfg.model or str(build_e5_shape_model(seeds, Path(tmp)))
        reference = _tagger(model, cfg, backend="torch", quantize=False)
        paths = build_paths(model, cfg, reference)
        for fn in paths.values():
            fn(texts[:32])  # warm-up: first calls allocate
        best: dict[str, float] = {}
        outputs: dict[str, Any] = {}
        peak = 0.0
        for _ in range(cfg.repeats):
            # The peak is measured in every round too, its best kept like each path's: on a shared machine
            # a peak taken once, in a busy moment, would flatter every fraction.
            peak = max(peak, sgemm_peak())
            for name, fn in paths.items():
                seconds, outputs[name] = timed(lambda fn=fn: fn(texts))
                best[name] = min(seconds, best.get(name, seconds))
                logger.info("%s: %.1f sentences/s", name, len(texts) / seconds)
        gflop = encoder_gflop(reference.model, reference.tokenizer, texts, reference.max_length)
    ref = outputs.get(REFERENCE) or reference.tag(texts)
    rows = []
    for name in paths:
        row = {"path": name, "sentences": len(texts), "seconds": best[name], "gflop": gflop}
        if name != REFERENCE:
            row["agreement"] = agreement_per_group(ref, outputs[name])
        rows.append(row)
    lengths = [len(x) for x in reference.tokenizer(texts, truncation=True, max_length=128)["input_ids"]]
    sys.stdout.write(
        f"model {cfg.model or 'random-weight e5-small shape'}; torch {torch.__version__}, "
        f"{threads} thread(s), "
        f"best of {cfg.repeats} round(s); {len(texts)} sentences ({len(seeds)} distinct seed sentences), "
        f"mean {sum(lengths) / len(lengths):.1f} tokens; default = backend "
        f"{backend_defaults.DEFAULT_CPU_BACKEND!r}, quantize {backend_defaults.DEFAULT_QUANTIZE}\n"
        f"fp32 sgemm peak (2048x2048, same threads, best of the rounds): {peak:.1f} GFLOP/s; "
        "GFLOP/s counts non-pad tokens only; "
        f"goal for the fp32 path: >= {PEAK_GOAL:.0%} of peak\n" + format_table(rows, peak) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
