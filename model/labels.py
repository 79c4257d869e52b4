"""The grouped label space: one classification head over all labels, decoded per group.

Logit layout (derived from `fintag.data.taxonomy.TAXONOMY`): the labels of each group, in taxonomy
order, concatenated. Single-choice groups are decoded with a softmax inside the group, the multi-label
group (themes) with a sigmoid per label and a tuned threshold. A single-choice group that abstains
(rating) gives its top label only when that label's probability reaches its tuned threshold, else its
default label (none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from fintag.data.taxonomy import TAXONOMY, LabelGroup

CONFIG_KEY = "fintag_label_groups"
THRESHOLDS_KEY = "fintag_thresholds"
MAX_LENGTH_KEY = "fintag_max_length"
DEFAULT_MAX_LENGTH = 128  # tokens per sentence, for a checkpoint whose config does not say (MAX_LENGTH_KEY)


def trained_max_length(config: object) -> int:
    """Tokens per sentence a checkpoint was trained with: its config's (a `PretrainedConfig`, or config.json
    as a dict) `MAX_LENGTH_KEY`, or `DEFAULT_MAX_LENGTH` for a checkpoint that does not say. Inference and
    evaluation truncate there."""
    value = (
        config.get(MAX_LENGTH_KEY) if isinstance(config, Mapping) else getattr(config, MAX_LENGTH_KEY, None)
    )
    return int(value or DEFAULT_MAX_LENGTH)


DEFAULT_THRESHOLD = 0.5


class LabelMismatchError(ValueError):
    pass


@dataclass(frozen=True)
class LabelSpace:
    groups: tuple[LabelGroup, ...] = TAXONOMY

    @property
    def names(self) -> list[str]:
        """Flat label names, e.g. 'sentiment:positive', in logit order."""
        return [f"{g.name}:{label}" for g in self.groups for label in g.labels]

    @property
    def size(self) -> int:
        return sum(len(g.labels) for g in self.groups)

    def slices(self) -> dict[str, slice]:
        out: dict[str, slice] = {}
        start = 0
        for g in self.groups:
            out[g.name] = slice(start, start + len(g.labels))
            start += len(g.labels)
        return out

    def config_fields(self, thresholds: dict[str, float] | None = None) -> dict[str, Any]:
        """What a model config needs to explain its own outputs."""
        id2label = dict(enumerate(self.names))
        groups = {
            g.name: {"labels": list(g.labels), "multi_label": g.multi_label, "offset": s.start}
            for g, s in zip(self.groups, self.slices().values())
        }
        multi = [g for g in self.groups if g.multi_label]
        th = {f"{g.name}:{label}": DEFAULT_THRESHOLD for g in multi for label in g.labels}
        # Abstaining groups: 0.0 (never abstain) until training tunes them.
        th.update(
            {
                f"{g.name}:{label}": 0.0
                for g in self.groups
                if g.abstains
                for label in g.labels
                if label != g.default
            }
        )
        th.update(thresholds or {})
        return {
            "id2label": id2label,
            "label2id": {v: k for k, v in id2label.items()},
            "num_labels": self.size,
            "problem_type": "multi_label_classification",
            CONFIG_KEY: groups,
            THRESHOLDS_KEY: th,
        }

    def check_config(self, config: Any) -> None:
        """Refuse a model config whose labels do not match the taxonomy."""
        groups = getattr(config, CONFIG_KEY, None)
        expected = self.config_fields()[CONFIG_KEY]
        if groups is None:
            raise LabelMismatchError(
                f"the checkpoint's config has no {CONFIG_KEY!r}: it is not a fintag tagger. To fine-tune a "
                "base model pass it to `fintag train --model`, not to tagging"
            )
        if groups != expected:
            raise LabelMismatchError(
                f"the checkpoint's labels {groups} do not match this fintag's taxonomy {expected}; "
                "retrain it with this version of fintag"
            )
        id2label = {int(k): v for k, v in getattr(config, "id2label", {}).items()}
        if id2label != dict(enumerate(self.names)):
            raise LabelMismatchError(f"the checkpoint's id2label {id2label} does not match {self.names}")

    def encode(self, records: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Targets per group: class indices (single-choice groups) or multi-hot floats (multi-label)."""
        out: dict[str, torch.Tensor] = {}
        for g in self.groups:
            if g.multi_label:
                t = torch.zeros(len(records), len(g.labels))
                for i, r in enumerate(records):
                    for label in r[g.name]:
                        t[i, g.index(label)] = 1.0
                out[g.name] = t
            else:
                out[g.name] = torch.tensor([g.index(r[g.name]) for r in records], dtype=torch.long)
        return out

    def loss(
        self,
        logits: torch.Tensor,
        targets: dict[str, torch.Tensor],
        weights: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Sum over groups: weighted cross-entropy for single-choice, BCE (pos_weight) for multi-label."""
        total = logits.new_zeros(())
        logits = logits.float()
        for g, s in zip(self.groups, self.slices().values()):
            w = None if weights is None else weights.get(g.name)
            if w is not None:
                w = w.to(logits.device)
            y = targets[g.name].to(logits.device)
            x = logits[:, s]
            if y.is_floating_point() and y.dim() == 2:
                # Rows of NaN carry no target for this group (e.g. distillation sentences for a group
                # the teacher does not label); they are left out of its loss.
                keep = ~torch.isnan(y).any(dim=1)
                if not keep.any():
                    continue
                x, y = x[keep], y[keep]
            if g.multi_label:
                total = total + F.binary_cross_entropy_with_logits(x, y, pos_weight=w)
            else:
                total = total + F.cross_entropy(x, y, weight=w)
        return total

    def probabilities(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = logits.float()
        return {
            g.name: torch.sigmoid(logits[:, s]) if g.multi_label else torch.softmax(logits[:, s], dim=-1)
            for g, s in zip(self.groups, self.slices().values())
        }

    def blend(
        self, logits: torch.Tensor, other: dict[str, np.ndarray], weights: dict[str, float]
    ) -> torch.Tensor:
        """Logits whose probabilities are `w * softmax/sigmoid(logits) + (1 - w) * other` per group (`w`:
        `weights[group]`, the model's share): log-probabilities for single-choice groups, log-odds for
        the multi-label one, so `probabilities` and `decode` read them like any logits."""
        probs = self.probabilities(logits)
        cols = []
        for g in self.groups:
            w = float(weights[g.name])
            p = w * probs[g.name].double() + (1.0 - w) * torch.as_tensor(other[g.name], dtype=torch.float64)
            p = p.clamp(1e-7, 1.0 - 1e-7)
            cols.append(torch.log(p / (1.0 - p)) if g.multi_label else torch.log(p))
        return torch.cat(cols, dim=1).float()

    def decode(
        self, logits: torch.Tensor, thresholds: dict[str, float] | None = None
    ) -> list[dict[str, Any]]:
        """Per-row predictions: {group: {"label", "score", "scores"}} or, for themes, {"labels", "scores"}."""
        probs = {k: v.cpu().tolist() for k, v in self.probabilities(logits).items()}
        thresholds = thresholds or {}
        rows: list[dict[str, Any]] = []
        for i in range(logits.shape[0]):
            row: dict[str, Any] = {}
            for g in self.groups:
                p = probs[g.name][i]
                scores = {label: round(float(v), 6) for label, v in zip(g.labels, p)}
                if g.multi_label:
                    labels = [
                        label
                        for label, v in zip(g.labels, p)
                        if v >= thresholds.get(f"{g.name}:{label}", DEFAULT_THRESHOLD)
                    ]
                    row[g.name] = {"labels": labels, "scores": scores}
                else:
                    k = max(range(len(p)), key=p.__getitem__)
                    label = g.labels[k]
                    if g.abstains and label != g.default and p[k] < thresholds.get(f"{g.name}:{label}", 0.0):
                        k = g.index(g.default)  # not confident enough to state it: the group's default
                    row[g.name] = {"label": g.labels[k], "score": round(float(p[k]), 6), "scores": scores}
            rows.append(row)
        return rows


LABEL_SPACE = LabelSpace()


def decode_records(
    logits: np.ndarray | torch.Tensor, thresholds: dict[str, float] | None = None
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Predicted labels per row ({group: label or [labels]}) and per-group probabilities, through
    `LABEL_SPACE.decode`: what training, evaluation and tagging all use."""
    t = torch.as_tensor(logits)
    rows = LABEL_SPACE.decode(t, thresholds)
    preds = [
        {g.name: (r[g.name]["labels"] if g.multi_label else r[g.name]["label"]) for g in LABEL_SPACE.groups}
        for r in rows
    ]
    probs = {k: v.numpy() for k, v in LABEL_SPACE.probabilities(t).items()}
    return preds, probs
