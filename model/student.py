"""A small from-scratch BERT that starts from a pretrained model's vocabulary and word embeddings.

The fast tier is a 4-layer, 128-wide BERT (preset fast): too small to learn Chinese from a few thousand
sentences, but it need not start from nothing. It takes the pretrained model's tokenizer and its
word-embedding matrix projected onto the matrix's top principal directions (PCA down to the preset's
width), so that words the gold data never shows still land near their synonyms and translations.
Everything above the embeddings starts random, and the student stays a plain
`BertForSequenceClassification`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from fintag.model.checkpoint import CheckpointError, build_from_scratch
from fintag.model.paths import ModelPathError, resolve_model

logger = logging.getLogger(__name__)

WORD_EMBEDDING_SUFFIX = "embeddings.word_embeddings.weight"
# BERT's own initialiser draws every weight with this standard deviation; the projected embeddings are
# scaled to it so that position embeddings and LayerNorm see the magnitudes they expect.
INIT_STD = 0.02


def project_embeddings(weight: torch.Tensor, width: int, seed: int = 0) -> torch.Tensor:
    """The rows of `weight` on its top `width` principal directions, scaled to std `INIT_STD`."""
    if width > weight.shape[1]:
        raise ValueError(f"cannot project {weight.shape[1]}-wide embeddings up to {width}")
    x = weight.float()
    x = x - x.mean(dim=0, keepdim=True)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        _, _, v = torch.pca_lowrank(x, q=width, center=False, niter=4)
    finally:
        torch.random.set_rng_state(generator_state)
    projected = x @ v[:, :width]
    return projected * (INIT_STD / projected.std().clamp_min(1e-12))


def _word_embeddings(folder: Path) -> torch.Tensor:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(
            f"{folder} has no safetensors weights to take word embeddings from; pass a converted or "
            "trained checkpoint folder (e.g. artifacts/run/model)"
        )
    for file in files:
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():
                if key.endswith(WORD_EMBEDDING_SUFFIX):
                    return fh.get_tensor(key)
    raise CheckpointError(f"{folder} holds no tensor named *{WORD_EMBEDDING_SUFFIX}: not a BERT-family model")


def build_student(source: str, preset: str, dropout: float, seed: int = 0) -> tuple[Any, Any]:
    """A `preset`-sized BERT with `source`'s tokenizer and PCA-projected word embeddings; its tokenizer."""
    from transformers import AutoTokenizer

    try:
        target, local = resolve_model(source, what="embedding source")
    except ModelPathError as exc:
        raise CheckpointError(str(exc)) from None
    if not local:
        raise CheckpointError(
            f"--student_embeddings takes a local checkpoint folder, not {source!r}: download the model "
            "and pass its folder"
        )
    folder = Path(target)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    weight = _word_embeddings(folder)
    if weight.shape[0] < len(tokenizer):
        raise CheckpointError(
            f"{folder}: {weight.shape[0]} embedding rows for a tokenizer of {len(tokenizer)} pieces"
        )
    model = build_from_scratch(preset, tokenizer, dropout=dropout)
    width = model.config.hidden_size
    projected = project_embeddings(weight[: len(tokenizer)], width, seed=seed)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(projected)
    logger.info(
        "student %s: %d word embeddings from %s, projected %d -> %d",
        preset,
        projected.shape[0],
        folder,
        weight.shape[1],
        width,
    )
    return model, tokenizer
