"""The one sentence splitter of fintag, used by dataset building, batch tagging and the server.

`segment(raw_text)` normalises a report, cuts it into units (sentences, bullets, headings), drops what
is not a sentence (tables of numbers, page debris, menu lines) and counts what it dropped. Each kept
unit carries its offsets in the original text and a stable id (a hash of its normalised text).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

from fintag.data.normalize import CJK_RE, Normalized, detect_lang, normalize

MAX_WEIGHT = 160  # longer units (CJK characters count 1, others 0.4) are cut at a comma near their middle
MIN_CJK = 4
MIN_WORDS = 3

_END_PUNCT = "。!?;！？；"
_CLOSERS = "”’\"'」』)）】"
# A bullet or numbering at the start of a line: "- ", "•", "1)", "(2)", "①", "一、", "1." (not "1.5").
_BULLET_RE = re.compile(
    r"^(?:[-•·●▪■◆◇*]\s*|\d{1,2}[)、]\s*|\d{1,2}\.(?!\d)\s*|\(\d{1,2}\)\s*|[①-⑳]\s*|[一二三四五六七八九十]{1,3}、\s*)"
)
_INLINE_BULLET_RE = re.compile(r"\s+(?:[-•]|\d{1,2}\.)\s+(?=\S)")
_ABBREV = {
    "u.s",
    "u.k",
    "e.g",
    "i.e",
    "inc",
    "ltd",
    "co",
    "corp",
    "no",
    "vs",
    "mr",
    "ms",
    "dr",
    "st",
    "jr",
    "approx",
    "est",
    "fig",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "p.a",
}
_DEBRIS_RE = re.compile(
    r"(加载中|返回顶部|扫描二维码|点击(查看|进入|阅读)|APP专享|VIP课程|热门推荐|股市直播|图文直播间|视频直播间|"
    r"新浪首页|语音播报|相关新闻|登录新浪财经|海量资讯|7X24小时|^收起$|^\d+/\d+$|^Workflow$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Sentence:
    """A unit of a report: `text` is normalised; `start`/`end` index the original text."""

    id: str
    text: str
    original: str
    start: int
    end: int
    kind: str  # "sentence" | "bullet" | "heading"
    lang: str


@dataclass
class Segmentation:
    sentences: list[Sentence]
    dropped: Counter[str] = field(default_factory=Counter)


def sentence_id(normalized_text: str) -> str:
    """Stable id of a sentence: the first 16 hex digits of the SHA-1 of its normalised text."""
    return hashlib.sha1(normalized_text.encode("utf-8")).hexdigest()[:16]


def _sentence_ends(line: str) -> list[int]:
    """End offsets (exclusive) of the sentences of one line."""
    ends: list[int] = []
    n = len(line)
    i = 0
    while i < n:
        ch = line[i]
        cut = False
        if ch in _END_PUNCT:
            cut = True
        elif ch == "." and _is_english_period(line, i):
            cut = True
        if cut:
            j = i + 1
            while j < n and (line[j] in _CLOSERS or line[j] in _END_PUNCT):
                j += 1
            ends.append(j)
            i = j
        else:
            i += 1
    if not ends or ends[-1] != n:
        ends.append(n)
    return ends


def _is_english_period(line: str, i: int) -> bool:
    nxt = line[i + 1 : i + 2]
    if nxt and not (nxt == " " or CJK_RE.match(nxt)):
        return False  # decimal point, "U.S", a domain name, "3.5x"
    if nxt == " " and line[i + 2 : i + 3].islower():
        return False  # "approx. three" style continuation
    m = re.search(r"([A-Za-z.]+)$", line[max(0, i - 12) : i])
    word = m.group(1).lower() if m else ""
    if word.strip(".") in _ABBREV or (len(word) == 1 and word.isalpha() and word.isupper() is False):
        return False
    if m and len(m.group(1)) == 1 and m.group(1).isupper():
        return False  # an initial: "J. Huang"
    return bool(nxt) or i == len(line) - 1


def _weight(unit: str) -> float:
    cjk = len(CJK_RE.findall(unit))
    return cjk + 0.4 * (len(unit) - cjk)


def _split_long(start: int, end: int, text: str) -> list[tuple[int, int]]:
    """Cut a run-on unit at commas until every piece weighs at most MAX_WEIGHT."""
    if _weight(text[start:end]) <= MAX_WEIGHT:
        return [(start, end)]
    middle = (start + end) // 2
    cuts = [
        k + 1
        for k in range(start + 20, end - 20)
        if text[k] in ",，、" or (text[k] == " " and text[k - 1] == ",")
    ]
    if not cuts:
        return [(start, end)]
    cut = min(cuts, key=lambda k: abs(k - middle))
    return _split_long(start, cut, text) + _split_long(cut, end, text)


def _units(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) spans of the normalised text, before filtering."""
    spans: list[tuple[int, int, str]] = []
    pos = 0
    for line in text.split("\n"):
        line_start = pos
        pos += len(line) + 1
        m = _BULLET_RE.match(line)
        offset = m.end() if m else 0
        kind = "bullet" if m else "sentence"
        # Inline bullets of English summaries: "Core Insights - The report ... - The emergence ...".
        pieces: list[tuple[int, int]] = []
        last = offset
        for bm in _INLINE_BULLET_RE.finditer(line, offset):
            pieces.append((last, bm.start()))
            last = bm.end()
        pieces.append((last, len(line)))
        for p_start, p_end in pieces:
            s = p_start
            for e in _sentence_ends(line[p_start:p_end]):
                for a, b in _split_long(s, p_start + e, line):
                    seg = line[a:b]
                    lead = len(seg) - len(seg.lstrip())
                    trail = len(seg.rstrip())
                    if trail > lead:
                        u_kind = "heading" if kind == "sentence" and _is_heading(seg.strip()) else kind
                        spans.append((line_start + a + lead, line_start + a + trail, u_kind))
                s = p_start + e
    return spans


def _is_heading(unit: str) -> bool:
    return unit.endswith((":", "：")) or (
        len(unit) <= 30 and unit[-1] not in _END_PUNCT + "." and " - " not in unit
    )


def drop_reason(unit: str) -> str | None:
    """Why `unit` is not a sentence ("debris", "numeric", "too_short"), or None to keep it."""
    if _DEBRIS_RE.search(unit):
        return "debris"
    cjk = len(CJK_RE.findall(unit))
    words = re.findall(r"[A-Za-z]{2,}", unit)
    letters = cjk + sum(len(w) for w in words)
    visible = sum(1 for ch in unit if not ch.isspace())
    if visible and letters / visible < 0.4:
        return "numeric"
    if cjk < MIN_CJK and len(words) < MIN_WORDS:
        return "too_short"
    return None


def segment(raw_text: str, normalized: Normalized | None = None) -> Segmentation:
    """Normalise and split a report; see the module docstring."""
    norm = normalized if normalized is not None else normalize(raw_text)
    result = Segmentation(sentences=[])
    for start, end, kind in _units(norm.text):
        unit = norm.text[start:end]
        reason = drop_reason(unit)
        if reason:
            result.dropped[reason] += 1
            continue
        o_start, o_end = norm.original_span(start, end)
        original = norm.original[o_start:o_end]
        result.sentences.append(
            Sentence(
                id=sentence_id(unit),
                text=unit,
                original=original,
                start=o_start,
                end=o_end,
                kind=kind,
                lang=detect_lang(original),
            )
        )
    return result


def split_sentences(text: str) -> list[str]:
    """The normalised sentences of `text` (convenience wrapper over `segment`)."""
    return [s.text for s in segment(text).sentences]
