"""Batches for training and evaluation: tokenised once, grouped by length, padded per batch."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from fintag.model.inference import pad_rows
from fintag.model.labels import LABEL_SPACE
from torch.utils.data import Dataset, Sampler

logger = logging.getLogger(__name__)


class SentenceDataset(Dataset):
    def __init__(
        self,
        records: Sequence[dict[str, Any]],
        tokenizer: Any,
        max_length: int,
        targets: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """`targets` (one row per record and group) replace the records' own labels, e.g. soft targets.
        `hidden` (set later, one row per record) holds a teacher's sentence states."""
        self.records = list(records)
        enc = tokenizer([r["text"] for r in self.records], truncation=True, max_length=max_length)
        self.input_ids: list[list[int]] = enc["input_ids"]
        if targets is None and self.records and "sentiment" in self.records[0]:
            targets = LABEL_SPACE.encode(self.records)
        self.targets = targets
        self.hidden: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {"input_ids": self.input_ids[i], "index": i}
        if self.targets is not None:
            item["targets"] = {k: v[i] for k, v in self.targets.items()}
        if self.hidden is not None:
            item["hidden"] = self.hidden[i]
        return item

    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar length: sort inside shuffled mega-batches, then shuffle the batches.

    The order depends only on (seed, epoch), so a resumed run sees the same batches.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int, shuffle: bool = True, mega: int = 50
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.mega = mega
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        idx = list(range(len(self.lengths)))
        rng = random.Random(self.seed * 1000 + self.epoch)
        if self.shuffle:
            rng.shuffle(idx)
        span = self.batch_size * self.mega if self.shuffle else len(idx)
        batches: list[list[int]] = []
        for s in range(0, len(idx), span):
            chunk = sorted(idx[s : s + span], key=lambda i: self.lengths[i], reverse=True)
            batches += [chunk[k : k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


class Collator:
    """Pads a batch to its longest row. With `mask_prob > 0` (training only) each ordinary token is
    replaced by [MASK] with that probability: an augmentation that stops a small model from memorising
    one cue per sentence.

    The masks of a sentence depend only on (seed, epoch, its index), not on how many batches came before:
    a run resumed mid-epoch masks exactly as an unbroken one (call `set_epoch` with the sampler's)."""

    def __init__(
        self, pad_token_id: int, mask_token_id: int | None = None, mask_prob: float = 0.0, seed: int = 0
    ) -> None:
        self.pad = pad_token_id
        self.mask_id = mask_token_id
        self.mask_prob = mask_prob if mask_token_id is not None else 0.0
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _uniform(self, index: int, width: int) -> torch.Tensor:
        # Reduced to the 64 bits a generator seed holds: seeds above about 18,000 (any --seed up to 2**32 - 1
        # is allowed) overflowed; the masks of smaller seeds are unchanged.
        key = ((self.seed * 1_000_003 + self.epoch) * 1_000_000_007 + index) % 2**64
        g = torch.Generator().manual_seed(key)
        return torch.rand(width, generator=g)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        ids, mask = pad_rows([it["input_ids"] for it in items], self.pad)
        width = ids.shape[1]
        if self.mask_prob > 0:
            # Never mask [CLS] (first), [SEP] (last real token) or padding.
            inner = mask.clone()
            inner[:, 0] = 0
            inner[torch.arange(len(items)), mask.sum(1) - 1] = 0
            uniform = torch.stack([self._uniform(int(it["index"]), width) for it in items])
            hit = (uniform < self.mask_prob) & inner.bool()
            ids = ids.masked_fill(hit, self.mask_id)
        batch: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "index": torch.tensor([it["index"] for it in items]),
        }
        if "targets" in items[0]:
            for name in items[0]["targets"]:
                batch[f"y_{name}"] = torch.stack([it["targets"][name] for it in items])
        if "hidden" in items[0]:
            batch["teacher_hidden"] = torch.stack([it["hidden"] for it in items])
        return batch


def class_weights(records: Sequence[dict[str, Any]], scheme: str) -> dict[str, torch.Tensor] | None:
    """Per-group loss weights for rare classes (mean weight 1); pos_weight for multi-label groups."""
    if scheme == "none":
        return None
    power = 0.5 if scheme == "sqrt" else 1.0
    targets = LABEL_SPACE.encode(records)
    weights: dict[str, torch.Tensor] = {}
    for g in LABEL_SPACE.groups:
        y = targets[g.name]
        if g.multi_label:
            pos = y.sum(0).clamp(min=1)
            neg = (len(records) - y.sum(0)).clamp(min=1)
            weights[g.name] = (neg / pos) ** power
        else:
            counts = torch.bincount(y, minlength=len(g.labels)).float().clamp(min=1)
            w = (counts.sum() / counts) ** power
            weights[g.name] = w / w.mean()
    return weights
