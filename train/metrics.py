"""Metrics per label group: per-class precision/recall/F1, macro-F1 (themes also micro-F1), confusion
matrices and expected calibration error."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from fintag.data.taxonomy import TAXONOMY, LabelGroup
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width confidence bins."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        sel = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(ece)


def group_metrics(
    group: LabelGroup, gold: Sequence[Any], pred: Sequence[Any], probs: np.ndarray | None = None
) -> dict[str, Any]:
    """Metrics of one group. Single-choice: labels as names; multi-label: lists of names.
    `probs`: (n, len(labels)) softmax (single) or sigmoid (multi) scores, for calibration.

    Macro-F1 averages over the labels present in `gold`, in both kinds of group: a label no sentence of the
    set carries (robotaxi among the report sentences of test) has no F1 to average, instead of counting as 0.
    False positives of such a label still show in micro-F1 and in its per-class precision."""
    labels = list(group.labels)
    out: dict[str, Any] = {"n": len(gold)}
    if group.multi_label:
        y = np.array([[label in g for label in labels] for g in gold], dtype=int).reshape(
            len(gold), len(labels)
        )
        p = np.array([[label in q for label in labels] for q in pred], dtype=int).reshape(
            len(pred), len(labels)
        )
        prec, rec, f1, sup = precision_recall_fscore_support(y, p, average=None, zero_division=0)
        out["micro_f1"] = float(f1_score(y, p, average="micro", zero_division=0))
        out["confusion"] = {
            label: confusion_matrix(y[:, k], p[:, k], labels=[0, 1]).tolist()
            for k, label in enumerate(labels)
        }
        if probs is not None:
            conf = np.where(probs >= 0.5, probs, 1 - probs).ravel()
            correct = ((probs >= 0.5).astype(int) == y).ravel()
            out["ece"] = expected_calibration_error(conf, correct)
    else:
        prec, rec, f1, sup = precision_recall_fscore_support(
            gold, pred, labels=labels, average=None, zero_division=0
        )
        out["accuracy"] = float(np.mean([a == b for a, b in zip(gold, pred)])) if len(gold) else 0.0
        out["confusion"] = confusion_matrix(gold, pred, labels=labels).tolist()
        if probs is not None:
            conf = probs.max(axis=1)
            correct = np.array([labels[k] == g for k, g in zip(probs.argmax(axis=1), gold)], dtype=float)
            out["ece"] = expected_calibration_error(conf, correct)
    present = [k for k in range(len(labels)) if sup[k] > 0]
    out["macro_f1"] = float(np.mean(f1[present])) if present else 0.0
    out["per_class"] = {
        label: {
            "precision": float(prec[k]),
            "recall": float(rec[k]),
            "f1": float(f1[k]),
            "support": int(sup[k]),
        }
        for k, label in enumerate(labels)
    }
    return out


def all_metrics(
    gold: Sequence[dict[str, Any]], pred: Sequence[dict[str, Any]], probs: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """Metrics of every group; `gold` and `pred` are records with one field per group (label names)."""
    out = {
        g.name: group_metrics(
            g, [r[g.name] for r in gold], [r[g.name] for r in pred], None if probs is None else probs[g.name]
        )
        for g in TAXONOMY
    }
    out["mean_macro_f1"] = float(np.mean([out[g.name]["macro_f1"] for g in TAXONOMY]))
    return out


def middle_of_ties(scores: Mapping[float, float]) -> float:
    """The grid value with the best score; where several tie (to 6 decimals), the middle of them (the lower
    of two middles). A plateau's edge often borders a cliff, so its middle holds up better on new data: on
    held-out halves of validation it scored 0.5-1.8 rating points above the largest tied blend weight and
    0.1-0.7 themes points above the lowest tied threshold (`docs/model.md`, twentieth session)."""
    best = max(round(v, 6) for v in scores.values())
    tied = sorted(k for k, v in scores.items() if round(v, 6) == best)
    return tied[(len(tied) - 1) // 2]


def tune_thresholds(group: LabelGroup, gold: Sequence[list[str]], probs: np.ndarray) -> dict[str, float]:
    """Per-label threshold maximising F1 on `gold` (validation), searched on a grid; among tied thresholds
    the middle one (`middle_of_ties`: a theme that validation separates perfectly gets the threshold
    halfway across the gap, not at its lower edge)."""
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    out: dict[str, float] = {}
    for k, label in enumerate(group.labels):
        y = np.array([label in g for g in gold], dtype=int)
        if y.sum() == 0:
            out[f"{group.name}:{label}"] = 0.5
            continue
        scores = {float(t): f1_score(y, (probs[:, k] >= t).astype(int), zero_division=0) for t in grid}
        out[f"{group.name}:{label}"] = middle_of_ties(scores)
    return out


def tune_min_score(group: LabelGroup, gold: Sequence[str], probs: np.ndarray) -> dict[str, float]:
    """One threshold for the non-default labels of an abstaining single-choice group (rating): below it
    the default label is given. The grid value maximising macro-F1 on `gold` (validation); ties go to
    the lowest, and 0.0 (never abstain) is on the grid."""
    assert group.abstains and group.default is not None
    grid = [0.0, *np.round(np.arange(0.5, 0.96, 0.05), 2).tolist()]
    top = probs.argmax(1)
    top_p = probs.max(1)
    default = group.index(group.default)
    labels = list(range(len(group.labels)))
    y = np.array([group.index(g) for g in gold])
    scores = []
    for t in grid:
        pred = np.where((top != default) & (top_p < t), default, top)
        scores.append(f1_score(y, pred, labels=labels, average="macro", zero_division=0))
    best = float(grid[int(np.argmax(scores))])
    return {f"{group.name}:{label}": best for label in group.labels if label != group.default}


def tune_all(records: Sequence[dict[str, Any]], probs: dict[str, np.ndarray]) -> dict[str, float]:
    """Every tuned threshold of a tagger from its probabilities on `records` (validation): per theme, and
    the rating's minimum score."""
    thresholds: dict[str, float] = {}
    for g in TAXONOMY:
        gold = [r[g.name] for r in records]
        if g.multi_label:
            thresholds.update(tune_thresholds(g, gold, probs[g.name]))
        elif g.abstains:
            thresholds.update(tune_min_score(g, gold, probs[g.name]))
    return thresholds
