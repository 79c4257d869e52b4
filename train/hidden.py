"""Hidden-state distillation: the student's sentence state learns the teacher's.

Soft labels give the student a dozen numbers per sentence; the teacher's last layer holds a 384-wide
state per token. With `--distill_hidden W` the fine-tuned teacher runs once over every training sentence
(gold and recombined) and its last-layer state of the first token (`<s>`/`[CLS]`, the one the classifier's
pooler reads) is kept; the student adds `W` times the mean squared error between a learned projection of
its own first-token state and the teacher's to the label loss. Matching every token's state instead
(TinyBERT) held the 4 x 128 student's label learning back (run Z3 in `docs/model.md`). Student and teacher
must tokenise alike (the student takes the base's tokenizer with `--student_embeddings`); the projection
only serves training and is not exported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from fintag.model.inference import length_batches, pad_rows
from tqdm.auto import tqdm

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


@torch.inference_mode()
def teacher_sentence_states(
    teacher: str, input_ids: Sequence[Sequence[int]], batch_size: int = 64, max_tokens: int = 8192
) -> torch.Tensor:
    """The teacher checkpoint's last-layer first-token states, (len(input_ids), width) in fp16, for
    sentences the student has tokenised as `input_ids`."""
    from fintag.model.checkpoint import load_tagger

    loaded = load_tagger(teacher)
    encoder = loaded.model.base_model
    lengths = [len(ids) for ids in input_ids]
    out = torch.empty(len(input_ids), loaded.model.config.hidden_size, dtype=torch.float16)
    bar = tqdm(total=len(input_ids), desc="teacher states")
    for idx in length_batches(lengths, batch_size, max_tokens):
        ids, mask = pad_rows([input_ids[i] for i in idx], loaded.tokenizer.pad_token_id or 0)
        states = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        out[torch.tensor(idx)] = states[:, 0].to(torch.float16)
        bar.update(len(idx))
    bar.close()
    logger.info("teacher states: %d sentences x %d from %s", len(out), out.shape[1], teacher)
    return out


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, projection: torch.nn.Module) -> torch.Tensor:
    """Mean squared error between `projection` of the student's last-layer states (batch, length, width)
    at the first token and the teacher's (batch, teacher width)."""
    return torch.nn.functional.mse_loss(projection(student[:, 0].float()), teacher.float())
