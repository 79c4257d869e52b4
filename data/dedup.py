"""Exact and near-duplicate detection over sentences (character-bigram Jaccard similarity)."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence

logger = logging.getLogger(__name__)

NEAR_DUP_THRESHOLD = 0.8


def _fold(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def bigrams(text: str) -> set[str]:
    t = _fold(text)
    return {t[i : i + 2] for i in range(len(t) - 1)} or {t}


def jaccard(a: str, b: str) -> float:
    ga, gb = bigrams(a), bigrams(b)
    return len(ga & gb) / len(ga | gb)


# Rows of the similarity product computed at once: memory stays ~ROW_BLOCK x len(texts) whatever the count
# (a million-character report has ~20,000 sentences; their full product would not fit).
ROW_BLOCK = 256


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = NEAR_DUP_THRESHOLD
) -> list[tuple[int, int, float]]:
    """All pairs (i, j, similarity) with i < j whose character-bigram Jaccard exceeds `threshold`, sorted."""
    if len(texts) < 2:
        return []
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(analyzer=lambda t: list(bigrams(t)), binary=True, lowercase=False)
    x = vec.fit_transform(texts).astype(np.int32).tocsr()
    sizes = np.asarray(x.sum(axis=1)).ravel()
    xt = x.T.tocsc()
    out: list[tuple[int, int, float]] = []
    for r0 in range(0, len(texts), ROW_BLOCK):
        inter = (x[r0 : r0 + ROW_BLOCK] @ xt).tocoo()
        rows = inter.row + r0
        upper = inter.col > rows
        rows, cols, common = rows[upper], inter.col[upper], inter.data[upper]
        sim = common / np.maximum(sizes[rows] + sizes[cols] - common, 1)
        keep = sim > threshold
        out += [(int(i), int(j), float(v)) for i, j, v in zip(rows[keep], cols[keep], sim[keep])]
    return sorted(out)


_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")


def restatements(texts: Sequence[str], threshold: float = NEAR_DUP_THRESHOLD) -> dict[int, int]:
    """For each text that restates an earlier one, the index of the first it restates: near-duplicate text
    (`near_duplicate_pairs`) with the same numbers in the same order, so "综上,公司营收同比增长30%" restates
    "公司营收同比增长30%" and "2024年营收同比增长30%" does not restate "2025年营收同比增长30%"."""
    numbers = [_NUMBER_RE.findall(unicodedata.normalize("NFKC", t)) for t in texts]
    found: dict[int, int] = {}
    for i, j, _ in near_duplicate_pairs(texts, threshold):
        if numbers[i] == numbers[j]:
            found.setdefault(j, i)
    return found


def duplicate_clusters(texts: Sequence[str], threshold: float = NEAR_DUP_THRESHOLD) -> list[int]:
    """For each text, the index of the first text of its near-duplicate cluster (union-find)."""
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in near_duplicate_pairs(texts, threshold):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(len(texts))]
