"""Hidden-state distillation: the student's sentence state learns the teacher's.

Soft labels give the student a dozen numbers per sentence; the teacher's last layer holds a 384-wide
state per token. With `--distill_hidden W` the fine-tuned teacher runs once over every training sentence
(gold and recombined; the same pass labels the recombined ones) and its last-layer state of the first
token (`<s>`/`[CLS]`, the one the classifier's pooler reads) is kept; the student adds `W` times the mean
squared error between a learned projection of its own first-token state and the teacher's to the label
loss. Matching every token's state instead (TinyBERT) held the 4 x 128 student's label learning back (run
Z3 in `docs/model.md`). Student and teacher must tokenise alike (the student takes the base's tokenizer
with `--student_embeddings`); the projection only serves training and is not exported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from fintag.model.inference import batched_outputs

logger = logging.getLogger(__name__)


class TokenizerMismatchError(ValueError):
    pass


def check_same_tokenizer(student_tokenizer: Any, teacher: str, texts: Sequence[str]) -> None:
    """Refuse a student whose tokenizer splits sentences differently from the teacher's."""
    from transformers import AutoTokenizer

    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher, trust_remote_code=False)
    sample = list(texts[:200])
    if student_tokenizer(sample)["input_ids"] != teacher_tokenizer(sample)["input_ids"]:
        raise TokenizerMismatchError(
            f"the student tokenises differently from the teacher {teacher}; --distill_hidden needs the "
            "teacher's tokenizer (pass --student_embeddings with the teacher's base, e.g. e5-small)"
        )


def teacher_pass(
    teacher: str,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
    bf16: bool = False,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of the teacher checkpoint over `texts`: its logits (len(texts), labels) and its last-layer
    first-token states (len(texts), width) in fp16. The labels of the recombined sentences and the states
    of every sentence come from the same pass (`fintag.train.augment.distillation_set`).

    The teacher runs on `device` (the student's: default the CPU), under bf16 autocast with `bf16` (the
    student's precision there: 1.7x faster on an AVX-512 BF16 CPU; logits within 0.07 of fp32's and states
    at cosine 0.9999, docs/model.md)."""
    from fintag.model.checkpoint import load_tagger

    loaded = load_tagger(teacher, device=str(device) if device is not None else None)
    on = next(loaded.model.parameters()).device.type
    with torch.autocast(on, dtype=torch.bfloat16, enabled=bf16):
        logits, states = batched_outputs(
            loaded.model,
            loaded.tokenizer,
            texts,
            batch_size=batch_size,
            max_length=max_length,
            progress="teacher labels and states",
            first_token_states=True,
        )
    assert states is not None
    logger.info(
        "teacher pass: %d sentences, states x %d, from %s%s",
        len(texts),
        states.shape[1],
        teacher,
        " (bf16 autocast)" if bf16 else "",
    )
    return logits, states.to(torch.float16)


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, projection: torch.nn.Module) -> torch.Tensor:
    """Mean squared error between `projection` of the student's last-layer states (batch, length, width)
    at the first token and the teacher's (batch, teacher width)."""
    return torch.nn.functional.mse_loss(projection(student[:, 0].float()), teacher.float())
