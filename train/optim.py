"""The optimiser of the fine-tuning loop: AdamW, no decay on biases and LayerNorms, and a pretrained
model's new head (pooler, classifier) at `head_lr_scale` times the encoder's rate."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from fintag.train.config import SCRATCH, TrainConfig


def is_head(name: str) -> bool:
    """The layers a pretrained checkpoint does not bring: the classifier and the pooler before it."""
    return name.startswith("classifier.") or ".pooler." in name


def build_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, extra: Iterable[torch.nn.Parameter] = ()
) -> torch.optim.Optimizer:
    """AdamW over the model's trainable weights, and `extra` (e.g. a distillation projection) undecayed.

    Fused unless `cfg.fused_optimizer` is off: the same update as the per-tensor loop within float rounding.
    """
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "LayerNorm" in name or "bias" in name
        groups.setdefault((no_decay, is_head(name)), []).append(p)
    scale = cfg.head_lr_scale if cfg.model != SCRATCH else 1.0
    param_groups = [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else cfg.weight_decay,
            "lr": cfg.learning_rate * (scale if head else 1.0),
        }
        for (no_decay, head), params in groups.items()
    ]
    extra = list(extra)
    if extra:
        param_groups.append({"params": extra, "weight_decay": 0.0})
    return torch.optim.AdamW(param_groups, lr=cfg.learning_rate, fused=cfg.fused_optimizer or None)
