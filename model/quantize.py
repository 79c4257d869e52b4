"""Dynamic int8 quantisation of a tagger's linear layers for CPU inference (`--quantize`).

Weights of every `nn.Linear` are stored as int8 and activations quantised on the fly; on this project's
CPU machine it tags a base-size model about 3x faster, and the trained default of `make demo` gives all of
the seed reports' 673 sentences the labels of its fp32 self (earlier defaults: 670 to 672; a random-weight
base-size model, whose logits nearly tie, 89 to 90 of 100 with per-tensor or per-channel scales alike):
`docs/benchmarks.md`. CPU only: on a GPU use bf16 instead.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch

logger = logging.getLogger(__name__)


class QuantizeError(ValueError):
    """Quantisation was asked for where it cannot run."""


def quantize_int8(model: Any) -> Any:
    """`model` with its linear layers replaced by dynamically quantised int8 ones (in place, eval mode)."""
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise QuantizeError(
            f"int8 dynamic quantisation runs on the CPU only; the model is on {device}: drop --quantize "
            "(on a GPU bf16 is the fast path)"
        )
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch announces that eager-mode quantisation will move to torchao; it works in this torch.
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    logger.info("linear layers quantised to int8 (dynamic)")
    return quantized
