"""Blending a trained encoder with the TF-IDF baseline's n-gram heads (`fintag.model.ngram`): the encoder's
weight per label group is chosen on validation, on a grid, with the thresholds tuned for each weight."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from fintag.data.taxonomy import TAXONOMY
from fintag.model.labels import LABEL_SPACE, decode_records
from fintag.model.ngram import Blend, NgramHeads
from fintag.train.baseline import TfidfBaseline
from fintag.train.metrics import all_metrics, middle_of_ties, tune_all

logger = logging.getLogger(__name__)

# The encoder's share of each group's probabilities: 0 is the n-gram heads alone, 1 the encoder alone.
WEIGHT_GRID: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(11))


def choose_weights(
    records: Sequence[dict[str, Any]], logits: torch.Tensor, ngram_probs: dict[str, np.ndarray]
) -> tuple[dict[str, float], dict[str, dict[float, float]]]:
    """Per group, the grid weight whose blend scores the best macro-F1 on `records` (validation), each
    weight with its own tuned thresholds; among tied weights the middle one (`middle_of_ties`). Returns the
    weights and every score (group -> weight -> macro-F1)."""
    scores: dict[str, dict[float, float]] = {g.name: {} for g in TAXONOMY}
    for w in WEIGHT_GRID:
        mixed = LABEL_SPACE.blend(logits, ngram_probs, {g.name: w for g in TAXONOMY})
        probs = {k: v.numpy() for k, v in LABEL_SPACE.probabilities(mixed).items()}
        preds, _ = decode_records(mixed, tune_all(records, probs))
        metrics = all_metrics(records, preds)
        for g in TAXONOMY:
            scores[g.name][w] = metrics[g.name]["macro_f1"]
    weights = {name: middle_of_ties(by_w) for name, by_w in scores.items()}
    return weights, scores


def fit_blend(
    train_records: Sequence[dict[str, Any]],
    val_records: Sequence[dict[str, Any]],
    val_logits: torch.Tensor,
    seed: int = 0,
) -> tuple[Blend, dict[str, dict[float, float]]]:
    """The TF-IDF baseline fitted on `train_records` as n-gram heads, and the encoder's weights chosen on
    validation (`val_logits`: the encoder's logits of `val_records`)."""
    heads = NgramHeads.from_pipelines(TfidfBaseline(seed=seed).fit(train_records).models)
    ngram_probs = heads.probabilities([r["text"] for r in val_records])
    weights, scores = choose_weights(val_records, val_logits, ngram_probs)
    logger.info(
        "n-gram blend: the encoder's weight per group %s (validation macro-F1 %s)",
        weights,
        {k: round(scores[k][w], 4) for k, w in weights.items()},
    )
    return Blend(heads, weights), scores
