"""Sizes of the offline-default BERT built from a config (no pre-trained weights needed), and the positions
any BERT-family config allows (`usable_positions`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512

    def bert_kwargs(self) -> dict[str, int]:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    # For tests: trains in seconds.
    "tiny": Preset(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    ),
    # The offline default: sized so that training fits in 10 minutes on a 2-core CPU.
    "small": Preset(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512),
    # The fast tier's student (with --student_embeddings): twice small's depth, chosen on validation
    # (docs/model.md, run X1); its speed against the default is in docs/benchmarks.md.
    "fast": Preset(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512),
    "medium": Preset(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    # bert-base-chinese's shape (for GPUs).
    "base": Preset(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def usable_positions(config: dict[str, Any]) -> int | None:
    """Tokens per sentence a model's position embeddings allow (RoBERTa-style models number positions
    after the padding id, so two of XLM-R's 514 are unusable); None when config.json does not say."""
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or isinstance(positions, bool):
        return None
    model_type = str(config.get("model_type", ""))
    if "roberta" in model_type or model_type == "camembert":
        pad = config.get("pad_token_id")
        positions -= (pad if isinstance(pad, int) else 1) + 1
    return positions
