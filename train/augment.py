"""Distillation data: new sentences made from the training sentences' clauses, labelled by a teacher.

`recombine_clauses` joins the head of one training sentence to the tail of another at clause punctuation
(，；： and their ASCII forms), or drops one clause of a sentence. The TF-IDF baseline (the teacher)
labels them with probabilities, and the student learns those soft targets next to the gold labels: it
sees many more variations of the same cues than the 2,500 hand-labelled sentences hold.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import Any

import torch
from fintag.data.normalize import CJK_RE
from fintag.model.labels import LABEL_SPACE
from fintag.train.baseline import TfidfBaseline

logger = logging.getLogger(__name__)

# Split after a clause mark (kept with its clause); a following space stays with the next clause.
_CLAUSE_END_RE = re.compile(r"(?<=[,;:，；：])")


def clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE_END_RE.split(text) if c.strip()]


def recombine_clauses(texts: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` new sentences: half join the head of one sentence to the tail of another, half drop a clause."""
    rng = random.Random(seed)
    split = [c for c in (clauses(t) for t in texts) if len(c) >= 2]
    if not split:
        return []
    # Heads and tails are joined within one script: Chinese with Chinese, English with English.
    by_script: dict[bool, list[list[str]]] = {}
    for c in split:
        by_script.setdefault(CJK_RE.search(c[0]) is not None, []).append(c)
    seen = set(texts)
    out: list[str] = []
    for _ in range(20 * n):
        if len(out) >= n:
            break
        a = rng.choice(split)
        if rng.random() < 0.5:
            b = rng.choice(by_script[CJK_RE.search(a[0]) is not None])
            new = "".join(a[: rng.randint(1, len(a) - 1)]) + "".join(b[rng.randint(1, len(b) - 1) :]).lstrip()
        else:
            drop = rng.randrange(len(a))
            new = "".join(a[:drop] + a[drop + 1 :])
        new = new.strip()
        if len(new) >= 6 and new not in seen:
            seen.add(new)
            out.append(new)
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


def distillation_set(
    train_records: Sequence[dict[str, Any]], per_sentence: int, seed: int
) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Training records followed by recombined sentences, with gold one-hot rows for the first and the
    baseline teacher's probabilities for the second."""
    texts = [r["text"] for r in train_records]
    extra = recombine_clauses(texts, per_sentence * len(texts), seed)
    teacher = TfidfBaseline(seed=seed).fit(train_records)
    _, probs = teacher.predict(extra)
    gold = one_hot_targets(train_records)
    targets = {
        g.name: torch.cat([gold[g.name], torch.as_tensor(probs[g.name], dtype=torch.float32)])
        for g in LABEL_SPACE.groups
    }
    logger.info(
        "distillation: %d recombined sentences labelled by the %s teacher", len(extra), TfidfBaseline.name
    )
    return [*train_records, *({"text": t} for t in extra)], targets
