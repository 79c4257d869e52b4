"""Distillation data: new sentences made from the training sentences' clauses, labelled by a teacher.

`recombine_clauses` joins the head of one training sentence to the tail of another at clause punctuation
(，；： and their ASCII forms), or drops one clause of a sentence; `swap_rating_words` puts another rating
word in a sentence that names one (and sometimes turns a rating change around). The teacher labels them
with probabilities (every group by default; `--distill_groups` picks), and the student learns those soft
targets next to the gold labels: it sees many more variations of the same cues than the hand-labelled
sentences hold. What each choice scored: `docs/model.md`.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import Any

import torch
from fintag.data.normalize import CJK_RE
from fintag.data.taxonomy import GROUPS, RATING_WORDS_EN, RATING_WORDS_NOT_SWAPPED, RATING_WORDS_ZH
from fintag.model.labels import LABEL_SPACE
from fintag.train.baseline import TfidfBaseline
from fintag.train.config import TFIDF_TEACHER

logger = logging.getLogger(__name__)

# Split after a clause mark (kept with its clause); a following space stays with the next clause.
_CLAUSE_END_RE = re.compile(r"(?<=[,;:，；：])")


def clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE_END_RE.split(text) if c.strip()]


def recombine_clauses(texts: Sequence[str], n: int, seed: int) -> list[tuple[str, tuple[int, ...]]]:
    """`n` new sentences, each with the indices of the texts its clauses come from: half join the head
    of one sentence to the tail of another, half drop a clause of one."""
    rng = random.Random(seed)
    split = [(i, c) for i, c in enumerate(clauses(t) for t in texts) if len(c) >= 2]
    if not split:
        return []
    # Heads and tails are joined within one script: Chinese with Chinese, English with English.
    by_script: dict[bool, list[tuple[int, list[str]]]] = {}
    for item in split:
        by_script.setdefault(CJK_RE.search(item[1][0]) is not None, []).append(item)
    seen = set(texts)
    out: list[tuple[str, tuple[int, ...]]] = []
    for _ in range(20 * n):
        if len(out) >= n:
            break
        i, a = rng.choice(split)
        if rng.random() < 0.5:
            j, b = rng.choice(by_script[CJK_RE.search(a[0]) is not None])
            head, tail = "".join(a[: rng.randint(1, len(a) - 1)]), "".join(b[rng.randint(1, len(b) - 1) :])
            new, sources = head + tail.lstrip(), (i, j)
        else:
            drop = rng.randrange(len(a))
            new, sources = "".join(a[:drop] + a[drop + 1 :]), (i,)
        new = new.strip()
        if len(new) >= 6 and new not in seen:
            seen.add(new)
            out.append((new, sources))
    return out


# 看好 / 看淡 are verbs of opinion far more often than ratings: they are not swapped in or out (nor the
# other words of `RATING_WORDS_NOT_SWAPPED`), and neither is a swap word inside one of them (审慎增持 is
# not turned into 审慎买入, nor "Sector Outperform" into "Sector Sell": levels no broker prints; measured in
# the thirty-third session, docs/model.md).
_KEPT = sorted(RATING_WORDS_NOT_SWAPPED, key=lambda w: (-len(w), w))
_KEPT_RE = re.compile(
    "|".join(re.escape(w) if CJK_RE.match(w) else rf"\b{re.escape(w)}\b" for w in _KEPT),
    re.IGNORECASE,
)
_SWAP_ZH = tuple(w for w in RATING_WORDS_ZH if w not in RATING_WORDS_NOT_SWAPPED)
_SWAP_EN = tuple(w for w in RATING_WORDS_EN if w not in RATING_WORDS_NOT_SWAPPED)
# Longest first (强烈推荐 before 推荐); English words whole and capitalised or upper-case (a rating, not
# "buy back").
_SWAP_RE = re.compile(
    "|".join(
        [
            *(re.escape(w) for w in sorted(_SWAP_ZH, key=len, reverse=True)),
            *(rf"\b(?:{w}|{w.upper()})\b" for w in _SWAP_EN),
        ]
    )
)
_DIRECTIONS = {
    "上调": "下调",
    "调高": "调低",
    "调升": "调降",
    "上修": "下修",
    "upgrade": "downgrade",
    "Upgrade": "Downgrade",
}
_DIRECTIONS.update({v: k for k, v in list(_DIRECTIONS.items())})
_DIRECTION_RE = re.compile("|".join(map(re.escape, _DIRECTIONS)))


def swap_rating_words(texts: Sequence[str], per_sentence: int, seed: int) -> list[tuple[str, int]]:
    """Up to `per_sentence` variants of each text that names a rating word, with the index of the text: one
    occurrence replaced by another rating word of the same language (upper case kept), and in half of
    them the direction words turned around (上调 <-> 下调, upgrade <-> downgrade). The gold label may not
    hold for the variant, so only a teacher labels it: the student sees every rating level in the places
    the training sentences put one (after 至, in brackets, before 评级, as a header's last word)."""
    rng = random.Random(seed)
    seen = set(texts)
    out: list[tuple[str, int]] = []
    for i, text in enumerate(texts):
        kept = [m.span() for m in _KEPT_RE.finditer(text)]
        spots = [
            m for m in _SWAP_RE.finditer(text) if not any(a < m.end() and m.start() < b for a, b in kept)
        ]
        for _ in range(per_sentence if spots else 0):
            spot = rng.choice(spots)
            old = spot.group()
            pool = _SWAP_ZH if CJK_RE.match(old) else _SWAP_EN
            word = rng.choice([w for w in pool if w.lower() != old.lower()])
            new = text[: spot.start()] + (word.upper() if old.isupper() else word) + text[spot.end() :]
            if rng.random() < 0.5:
                new = _DIRECTION_RE.sub(lambda m: _DIRECTIONS[m.group()], new)
            if new not in seen:
                seen.add(new)
                out.append((new, i))
    return out


def one_hot_targets(records: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Gold labels as probability rows, the same form as a teacher's soft targets."""
    targets = LABEL_SPACE.encode(records)
    return {
        g.name: targets[g.name]
        if g.multi_label
        else torch.nn.functional.one_hot(targets[g.name], len(g.labels)).float()
        for g in LABEL_SPACE.groups
    }


def sharpen(probs: torch.Tensor, multi_label: bool, temperature: float) -> torch.Tensor:
    """Teacher probabilities at `temperature` (< 1 sharpens): softmax(log p / T) per row for a single-choice
    group, sigmoid(logit(p) / T) per label for a multi-label one."""
    if temperature == 1.0:
        return probs
    p = probs.double().clamp(1e-7, 1 - 1e-7)
    if multi_label:
        return torch.sigmoid(torch.logit(p) / temperature).float()
    return torch.softmax(torch.log(p) / temperature, dim=-1).float()


class CheckpointTeacher:
    """A trained fintag checkpoint as teacher: its probabilities, through the one logits path, on the
    inference backend `fintag tag` uses (onnx fp32 on a CPU: the labels of torch fp32, faster)."""

    def __init__(self, path: str, batch_size: int = 64) -> None:
        from fintag.model.backend import load_backend

        self.loaded = load_backend(path)
        self.batch_size = batch_size
        self.name = f"checkpoint {path}"

    def predict(self, texts: Sequence[str]) -> tuple[None, dict[str, Any]]:
        from fintag.model.inference import batched_logits

        logits = batched_logits(
            self.loaded.model,
            self.loaded.tokenizer,
            list(texts),
            batch_size=self.batch_size,
            max_length=self.loaded.max_length,
            progress="teacher labels",
        )
        return None, {k: v.numpy() for k, v in LABEL_SPACE.probabilities(logits).items()}


def distillation_set(
    train_records: Sequence[dict[str, Any]],
    per_sentence: int,
    seed: int,
    temperature: float = 1.0,
    groups: Sequence[str] = tuple(GROUPS),
    teacher: str = TFIDF_TEACHER,
    with_states: bool = False,
    max_length: int = 128,
    rating_swaps: int = 0,
    bf16: bool = False,
    device: str | torch.device | None = None,
) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor], torch.Tensor | None]:
    """Training records followed by recombined sentences (and `rating_swaps` rating-word variants of each
    sentence naming a rating word), with gold one-hot rows for the first and the
    teacher's probabilities (at `temperature`) for the second, in `groups`; the recombined sentences' rows
    of the other groups are NaN (no target: left out of that group's loss). The teacher is the TF-IDF
    baseline fitted on the training records (`tfidf`) or a trained checkpoint (a folder: how the fast
    tier learns from the fine-tuned default). Every group by default; leaving the rating out was the
    default while the TF-IDF teacher read quotation marks as a rating (`docs/model.md`).

    With `with_states` (a checkpoint teacher) one pass of the teacher over every sentence, at `max_length`
    tokens, gives the recombined sentences' probabilities and every sentence's first-token state (the third
    value; None otherwise), for hidden-state distillation (`fintag.train.hidden`); `device` and `bf16`
    say where it runs and whether under bf16 autocast (`fintag.train.hidden.teacher_pass`)."""
    texts = [r["text"] for r in train_records]
    extra = [t for t, _ in recombine_clauses(texts, per_sentence * len(texts), seed)]
    recombined = set(extra)
    swapped = [t for t, _ in swap_rating_words(texts, rating_swaps, seed) if t not in recombined]
    extra += swapped
    states = None
    if with_states:
        if teacher == TFIDF_TEACHER:
            raise ValueError("sentence states need a trained checkpoint as teacher, not the tfidf baseline")
        from fintag.train.hidden import teacher_pass

        logits, states = teacher_pass(teacher, [*texts, *extra], max_length, bf16=bf16, device=device)
        probs = {k: v.numpy() for k, v in LABEL_SPACE.probabilities(logits[len(texts) :]).items()}
        name = f"checkpoint {teacher}"
    elif teacher == TFIDF_TEACHER:
        _, probs = TfidfBaseline(seed=seed).fit(train_records).predict(extra)
        name = TfidfBaseline.name
    else:
        model_teacher = CheckpointTeacher(teacher)
        _, probs = model_teacher.predict(extra)
        name = model_teacher.name
    gold = one_hot_targets(train_records)
    targets: dict[str, torch.Tensor] = {}
    for g in LABEL_SPACE.groups:
        soft = sharpen(torch.as_tensor(probs[g.name], dtype=torch.float32), g.multi_label, temperature)
        if g.name not in groups:
            soft = torch.full_like(soft, float("nan"))  # no target: left out of this group's loss
        targets[g.name] = torch.cat([gold[g.name], soft])
    logger.info(
        "distillation: %d recombined sentences and %d rating-word variants labelled by the teacher %s",
        len(extra) - len(swapped),
        len(swapped),
        name,
    )
    return [*train_records, *({"text": t} for t in extra)], targets, states
