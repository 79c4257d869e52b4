"""Build, save and load tagger checkpoints: standard Hugging Face folders with safetensors weights.

Loading refuses what it should, each time naming the problem and the fix: a folder without weights,
pickled `.bin` weights (unless `allow_pickle=True`), a config that asks for remote code, and a
checkpoint whose labels do not match the taxonomy.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintag.data.fsutil import atomic_directory
from fintag.model.labels import (
    LABEL_SPACE,
    THRESHOLDS_KEY,
    LabelMismatchError,
    trained_max_length,
)
from fintag.model.ngram import Blend, NgramError, load_blend
from fintag.model.paths import ModelPathError, resolve_model
from fintag.model.presets import get_preset

logger = logging.getLogger(__name__)

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


class CheckpointError(Exception):
    """A checkpoint that cannot or must not be loaded; the message says why and what to do."""


class CheckpointLabelError(CheckpointError, LabelMismatchError):
    """A checkpoint whose labels do not match the taxonomy (callers may catch either parent)."""


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    source: str
    # The n-gram heads blended with the encoder (`fintag.model.ngram`), where the checkpoint has them.
    blend: Blend | None = None

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(getattr(self.model.config, THRESHOLDS_KEY, {}) or {})

    @property
    def max_length(self) -> int:
        """Tokens per sentence the model was trained with (128 for checkpoints that do not say)."""
        return trained_max_length(self.model.config)


def _check_local_folder(path: Path, allow_pickle: bool) -> None:
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a folder; pass a checkpoint folder or a hub id")
    config_path = path / "config.json"
    if not config_path.exists():
        raise CheckpointError(
            f"{path} has no config.json: it is not a Hugging Face checkpoint (train one with `fintag train`)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc}); the checkpoint is damaged") from exc
    if "auto_map" in config or config.get("trust_remote_code"):
        raise CheckpointError(
            f"{config_path} asks for remote code (auto_map); fintag never runs code from a checkpoint. "
            "Use a checkpoint of a standard architecture"
        )
    has_safe = any((path / w).exists() for w in SAFE_WEIGHTS)
    has_pickle = any((path / w).exists() for w in PICKLE_WEIGHTS)
    if not has_safe and not has_pickle:
        raise CheckpointError(
            f"{path} has no weights (expected model.safetensors); the folder is incomplete or the training "
            "run did not finish: re-run `fintag train` (with --resume to continue it)"
        )
    if not has_safe and not allow_pickle:
        raise CheckpointError(
            f"{path} holds only pickled weights (pytorch_model.bin), which can run arbitrary code when "
            "loaded. Convert them to safetensors, or pass --allow_pickle (allow_pickle=True in Python) if "
            "you trust the file"
        )


def load_tagger(
    name_or_path: str | os.PathLike[str], allow_pickle: bool = False, device: str | None = None
) -> Loaded:
    """Load a trained fintag checkpoint (local folder or hub id) for inference."""
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source = str(name_or_path)
    try:
        target, local = resolve_model(source)
    except ModelPathError as exc:
        raise CheckpointError(str(exc)) from None
    if local:
        _check_local_folder(Path(target), allow_pickle)
    try:
        config = AutoConfig.from_pretrained(target, trust_remote_code=False)
        # Labels first: a head of another size is then reported as a label mismatch, not as bad weights.
        try:
            LABEL_SPACE.check_config(config)
        except LabelMismatchError as exc:
            raise CheckpointLabelError(f"{source}: {exc}") from None
        model = AutoModelForSequenceClassification.from_pretrained(
            target, config=config, trust_remote_code=False, use_safetensors=None if allow_pickle else True
        )
        tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=False)
        blend = load_blend(target, config)
    except NgramError as exc:
        raise CheckpointError(f"{source}: {exc}") from exc
    except OSError as exc:
        raise CheckpointError(
            f"cannot load {source!r}: {exc}. Pass a local checkpoint folder, or a hub id on a machine that "
            "reaches the hub (HF_HUB_OFFLINE must be unset)"
        ) from exc
    except (SafetensorError, RuntimeError, ValueError) as exc:
        if isinstance(exc, CheckpointLabelError):
            raise
        # A truncated model.safetensors (a copy cut short), weights that do not fit config.json, a damaged
        # tokenizer file: refuse with the reason instead of a library traceback.
        detail = (str(exc).splitlines() or [""])[0][:300]
        raise CheckpointError(
            f"{source} is damaged or incomplete ({type(exc).__name__}: {detail}); copy the checkpoint again "
            "or re-export it with `fintag train`"
        ) from exc
    model.eval()
    if device:
        model.to(device)
    return Loaded(model=model, tokenizer=tokenizer, source=source, blend=blend)


def build_from_scratch(
    preset: str, tokenizer: Any, max_position_embeddings: int | None = None, dropout: float = 0.1
) -> Any:
    """A BERT of the preset's size with random weights and the tagger head."""
    from transformers import BertConfig, BertForSequenceClassification

    kwargs = get_preset(preset).bert_kwargs()
    if max_position_embeddings:
        kwargs["max_position_embeddings"] = max_position_embeddings
    config = BertConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **kwargs,
        **LABEL_SPACE.config_fields(),
    )
    return BertForSequenceClassification(config)


def build_from_pretrained(name_or_path: str, allow_pickle: bool = False) -> tuple[Any, Any]:
    """A BERT-family encoder from the hub or a folder, with a fresh tagger head; and its tokenizer."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    try:
        target, local = resolve_model(name_or_path, what="base model")
    except ModelPathError as exc:
        raise CheckpointError(str(exc)) from None
    if local:
        _check_local_folder(Path(target), allow_pickle)
    name_or_path = target
    try:
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=False)
        # from_pretrained ignores keyword arguments that are not attributes already: set them here.
        for key, value in LABEL_SPACE.config_fields().items():
            setattr(config, key, value)
        model = AutoModelForSequenceClassification.from_pretrained(
            name_or_path,
            config=config,
            trust_remote_code=False,
            use_safetensors=None if allow_pickle else True,
            ignore_mismatched_sizes=True,
        )
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
    except OSError as exc:
        hint = (
            " If the repository only has pytorch_model.bin, pass --allow_pickle (allow_pickle=True in "
            "Python)."
            if not allow_pickle
            else ""
        )
        raise CheckpointError(
            f"cannot load base model {name_or_path!r}: {exc}. This machine may not reach the hub "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}); download it elsewhere and pass the "
            f"folder.{hint}"
        ) from exc
    return model, tokenizer


def save_tagger(
    model: Any,
    tokenizer: Any,
    path: str | os.PathLike[str],
    card: str | None = None,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write the checkpoint atomically: config.json (labels), model.safetensors, tokenizer, README.md, and
    whatever `extra` writes into the folder (the n-gram heads of a blended tagger)."""
    target = Path(path)
    unwrapped = getattr(model, "module", model)
    with atomic_directory(target) as tmp:
        unwrapped.save_pretrained(tmp)
        if extra is not None:
            extra(tmp)
        tokenizer.save_pretrained(tmp)
        if card:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        if not (tmp / "model.safetensors").exists() and not (tmp / "model.safetensors.index.json").exists():
            raise CheckpointError(f"save_pretrained did not write safetensors weights into {tmp}")
    return target
