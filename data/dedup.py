"""Exact and near-duplicate detection over sentences (character-bigram Jaccard similarity)."""

from __future__ import annotations

import logging
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


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = NEAR_DUP_THRESHOLD
) -> list[tuple[int, int, float]]:
    """All pairs (i, j, similarity) with i < j whose character-bigram Jaccard exceeds `threshold`."""
    if len(texts) < 2:
        return []
    import numpy as np
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(analyzer=lambda t: list(bigrams(t)), binary=True, lowercase=False)
    x = vec.fit_transform(texts).astype(np.int32)
    sizes = np.asarray(x.sum(axis=1)).ravel()
    inter = sparse.triu(x @ x.T, k=1).tocoo()
    union = sizes[inter.row] + sizes[inter.col] - inter.data
    sim = inter.data / np.maximum(union, 1)
    keep = sim > threshold
    return [(int(i), int(j), float(s)) for i, j, s in zip(inter.row[keep], inter.col[keep], sim[keep])]


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
