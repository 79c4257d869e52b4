"""Exact and near-duplicate detection over sentences (character-bigram Jaccard similarity)."""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

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


def _similar_pairs(
    texts: Sequence[str], threshold: float
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(i, j, similarity) arrays of the pairs i < j whose bigram Jaccard exceeds `threshold`, every pair of
    ROW_BLOCK values of j at a time, in order of j."""
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(analyzer=lambda t: list(bigrams(t)), binary=True, lowercase=False)
    x = vec.fit_transform(texts).astype(np.int32).tocsr()
    sizes = np.asarray(x.sum(axis=1)).ravel()
    xt = x.T.tocsc()
    for r0 in range(0, len(texts), ROW_BLOCK):
        r1 = min(r0 + ROW_BLOCK, len(texts))
        inter = (x[r0:r1] @ xt[:, :r1]).tocoo()  # only columns before r1 can be i < j
        later, earlier = inter.row + r0, inter.col
        lower = earlier < later
        earlier, later, common = earlier[lower], later[lower], inter.data[lower]
        sim = common / np.maximum(sizes[earlier] + sizes[later] - common, 1)
        keep = sim > threshold
        yield earlier[keep], later[keep], sim[keep]


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = NEAR_DUP_THRESHOLD
) -> list[tuple[int, int, float]]:
    """All pairs (i, j, similarity) with i < j whose character-bigram Jaccard exceeds `threshold`, sorted."""
    if len(texts) < 2:
        return []
    out: list[tuple[int, int, float]] = []
    for rows, cols, sim in _similar_pairs(texts, threshold):
        out += [(int(i), int(j), float(v)) for i, j, v in zip(rows, cols, sim)]
    return sorted(out)


# A restatement repeats a sentence with a few words added or left out, never changed: "综上," or "风险提示:"
# before it, "初步" or "的" inside it. What is added or left out is at most `_RESTATE_EXTRA` of the shorter
# text (or 6 characters) and holds no figure and no negation: "符合预期" / "不符合预期", "一季度" / "二季度",
# "30%" / "45%", "expect" / "do not expect" state other things, and "...增长30%" with ",维持买入评级" after
# it says something more. Texts of the same length restate only when one phrase is put elsewhere in its
# clause ("近三个月" before or after "公司股价"); otherwise something was changed.
_END_PUNCT = "。.!?;！？；"
_NEGATION_RE = re.compile(r"[不未没無无非否莫别勿]|not|no|n't|never|neither|nor")
_RESTATE_EXTRA = 0.2
# (in folded text, which has no spaces: "while" may stand inside a word; then a restatement is missed)
_CLAUSE_END_RE = re.compile(r"[,，;；:：。.!?]|while|whereas|although|but", re.IGNORECASE)
# Candidates: a looser bigram similarity than the dataset's (a prefix weighs more in a short sentence);
# at most `MAX_CHECKS` of the most similar earlier texts are checked for each text.
RESTATE_CANDIDATE = 0.5
MAX_CHECKS = 16


def _restates(a: str, b: str) -> bool:
    """Whether folded `a` and `b` (not equal, the same figures) differ only by what one adds to the other,
    or by one phrase put elsewhere ("公司股价近三个月上涨112%" / "近三个月公司股价上涨112%"; two phrases
    swapped, "国产份额超过海外" / "海外份额超过国产", are a replacement)."""
    changed = []
    at = []  # where in `a` each change stands
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op == "replace" or _NEGATION_RE.search(a[i1:i2] + b[j1:j2]):
            return False
        changed.append(a[i1:i2] or b[j1:j2])
        at.append(i1)
    if len(a) == len(b):  # the same length: one phrase moved (nothing added), or something was changed
        # A move within one clause: across a clause's end ("明年营收增长,利润下降" / "营收增长,明年利润下降")
        # it says something else.
        return (
            len(changed) == 2
            and changed[0] == changed[1]
            and not _CLAUSE_END_RE.search(a[min(at) : max(at) + len(changed[0])].replace(changed[0], "", 1))
        )
    return sum(map(len, changed)) <= max(6, _RESTATE_EXTRA * min(len(a), len(b)))


def restatements(texts: Sequence[str]) -> dict[int, int]:
    """For each text that restates an earlier one, the index of the one it restates: the first with the
    same text (folded, end punctuation aside), else the most similar earlier text with the same figures
    that it repeats with a few words added or left out (`_restates`): "综上,公司营收同比增长30%" restates
    "公司营收同比增长30%。"; "公司营收同比增长45%" and "公司营收未同比增长30%" restate neither."""
    core = [_fold(t).rstrip(_END_PUNCT) for t in texts]
    found: dict[int, int] = {}
    first: dict[str, int] = {}
    for k, c in enumerate(core):
        if c in first:
            found[k] = first[c]
        else:
            first[c] = k
    unique = list(first.values())  # near-duplicates are looked for among distinct texts only
    if len(unique) < 2:
        return found
    import numpy as np

    figure_ids: dict[str, int] = {}
    figures = np.array([figure_ids.setdefault(re.sub(r"\D", "", core[k]), len(figure_ids)) for k in unique])
    for earlier, later, sim in _similar_pairs([texts[k] for k in unique], RESTATE_CANDIDATE):
        same = figures[earlier] == figures[later]
        earlier, later, sim = earlier[same], later[same], sim[same]
        order = np.lexsort((-sim, later))  # by text, the most similar earlier ones first
        checked: dict[int, int] = {}
        for i, j in zip(earlier[order].tolist(), later[order].tolist()):
            if unique[j] in found or checked.get(j, 0) >= MAX_CHECKS:
                continue
            checked[j] = checked.get(j, 0) + 1
            if _restates(core[unique[i]], core[unique[j]]):
                found[unique[j]] = unique[i]
    return dict(sorted(found.items()))


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
