"""Train only the word-embedding rows a run can reach.

A student trains its whole word-embedding matrix (67,608 x 128 for the fast tier), but a run's sentences
use a few thousand pieces. Every other row gets a zero gradient, so AdamW moves it by weight decay alone
(Adam's own step is 0/(0 + eps) there), yet the gradient, the optimiser and the moving average of the
weights still sweep the whole matrix at every step. `TrainedRows` swaps in the reachable rows alone and
keeps the rest aside with one scale, the product of the decay factors they would have had;
`full_word_embeddings` puts a plain `nn.Embedding` back for saving. The weights come out as if the full
matrix had trained (to float rounding, a test), at about four fifths of the fast tier's step time
(docs/model.md, twenty-first session).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class TrainedRows(nn.Module):
    """The rows of a word-embedding matrix at `token_ids`, trainable; the other rows frozen and scaled.

    Takes the place of `nn.Embedding` in a model under training. `rows` is the parameter; `index` maps a
    token id to its row (-1: not trained); `rest_scale` is a float buffer, so a moving average of the model
    (`fintag.train.ema`, which averages float buffers) averages it exactly as it would the frozen rows."""

    def __init__(self, embedding: nn.Embedding, token_ids: Iterable[int]) -> None:
        super().__init__()
        weight = embedding.weight.detach()
        ids = torch.unique(torch.as_tensor(list(token_ids), dtype=torch.long))
        if ids.numel() == 0 or ids.min() < 0 or ids.max() >= weight.shape[0]:
            raise ValueError(f"token ids must lie in [0, {weight.shape[0]}) and not be empty")
        index = torch.full((weight.shape[0],), -1, dtype=torch.long)
        index[ids] = torch.arange(ids.numel())
        self.rows = nn.Parameter(weight[ids].clone())
        self.register_buffer("index", index.to(weight.device))
        self.register_buffer("rest_scale", torch.ones((), dtype=weight.dtype, device=weight.device))
        # A plain attribute, not a buffer: the state dict and the moving average skip it. A resumed run
        # rebuilds it from the same initial weights.
        self.rest = weight.clone()
        self.padding_idx = pad = embedding.padding_idx
        self.padding_row = int(index[pad]) if pad is not None and index[pad] >= 0 else None

    @property
    def num_embeddings(self) -> int:
        return int(self.index.numel())

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = self.index[input_ids]
        if bool((rows < 0).any()):
            raise ValueError(
                "a token outside the rows being trained reached the word embeddings; build TrainedRows "
                "from every sentence the run feeds (training and validation)"
            )
        return nn.functional.embedding(rows, self.rows, padding_idx=self.padding_row)

    @torch.no_grad()
    def decay_rest(self, factor: float) -> None:
        """What AdamW's decoupled weight decay did to the untrained rows at one step: times `factor`."""
        self.rest_scale.mul_(factor)

    @torch.no_grad()
    def expanded(self) -> nn.Embedding:
        """A plain embedding with every row: the trained ones and the scaled rest."""
        weight = self.rest.to(self.rows.device, self.rows.dtype) * self.rest_scale
        weight[self.index >= 0] = self.rows.detach()
        out = nn.Embedding(*weight.shape, padding_idx=self.padding_idx, device=weight.device)
        out.weight.copy_(weight)
        return out


def train_reachable_rows(model: Any, token_ids: Iterable[int]) -> TrainedRows | None:
    """Swap `model`'s trainable word embeddings for `TrainedRows` at `token_ids`; None if they are frozen."""
    embedding = model.get_input_embeddings()
    if not isinstance(embedding, nn.Embedding) or not embedding.weight.requires_grad:
        return None
    rows = TrainedRows(embedding, token_ids)
    model.set_input_embeddings(rows)
    return rows


def decay_factor(optimizer: Any, param: nn.Parameter) -> float:
    """1 - lr * weight_decay of the optimiser group that holds `param` (AdamW's decoupled decay)."""
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return 1.0 - group["lr"] * group.get("weight_decay", 0.0)
    raise ValueError("the optimiser does not hold this parameter")


@contextmanager
def full_word_embeddings(model: Any) -> Iterator[Any]:
    """`model` with plain word embeddings for as long as the block runs (to save a standard checkpoint)."""
    embedding = model.get_input_embeddings()
    if not isinstance(embedding, TrainedRows):
        yield model
        return
    model.set_input_embeddings(embedding.expanded())
    try:
        yield model
    finally:
        model.set_input_embeddings(embedding)
