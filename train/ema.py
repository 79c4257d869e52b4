"""An exponential moving average of the weights being trained (Polyak averaging), evaluated and exported
in place of the raw weights: a noisy student's epoch-to-epoch wander averages out."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.swa_utils import AveragedModel

AverageFn = Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor | int], None]


def _ema_fn(decay: float) -> AverageFn:
    def update(
        averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor | int
    ) -> None:
        # Warm-up as in TensorFlow's ExponentialMovingAverage(num_updates=...): early averages follow the
        # weights closely instead of holding on to the random initialisation. One fused in-place lerp per
        # device and dtype (a per-tensor Python update cost the student 19 s per epoch).
        if not averaged[0].is_floating_point():  # integer buffers (position ids): copied, not averaged
            torch._foreach_copy_(averaged, current)
            return
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(averaged, current, 1.0 - d)

    return update


def averaged_model(model: torch.nn.Module, decay: float) -> AveragedModel:
    """A copy of `model` whose `update_parameters(model)` keeps the moving average of its parameters and
    floating-point buffers; integer buffers are copied."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"--ema_decay must lie strictly between 0 and 1 (0 turns it off), not {decay}")
    return AveragedModel(model, multi_avg_fn=_ema_fn(decay), use_buffers=True)
