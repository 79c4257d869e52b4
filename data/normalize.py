"""The one text normaliser of fintag, used by dataset building, batch tagging and the server.

`normalize` applies, in order: NFKC (full-width to half-width) per grapheme (a circled number before a
figure becomes "(1)": "①2025年" is not "12025年"), removal of control and
format characters (zero-width spaces, BOMs, bidi marks, lone surrogates), the inline math of PDF-to-markdown
converters read as plain figures ("$4 4 . 4 \\%$" -> "44.4%", `fintag.data.latex`), removal of citation
markers such as ``[5][26]``, traditional to simplified Chinese (OpenCC ``t2s``) of the lines that read as
traditional (`looks_traditional`), with the words of `KEEP_WORDS` kept as written, and whitespace
collapsing. Simplified text is left as it is: t2s alone would rewrite 昇腾 (Huawei's Ascend) as 升腾
(figures in docs/normalizer.md).
Every output character remembers the index of the original character it came from, so a span of the
normalised text maps back to the original text.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from dataclasses import dataclass

import opencc
from fintag.data.latex import has_math, rewrite_math

logger = logging.getLogger(__name__)

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
CJK_RE = re.compile(f"[{CJK}]")
# One or more bracketed reference numbers: [5], [5][26], [3,4], [12-14].
CITATION_RE = re.compile(r"(?:\[\d{1,3}(?:\s*[,\-–]\s*\d{1,3})*\])+")
_SUMMARY_BREAK_RE = re.compile(r"[ \n]+[A-Z0-9•\-]")
_DOLLARS = ("$", "＄", "﹩")  # what NFKC makes a "$" of: a converter's math may start there


@dataclass(frozen=True)
class Normalized:
    """Normalised text plus, for each of its characters, the index of its source character."""

    text: str
    offsets: tuple[int, ...]
    original: str

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map the half-open span [start, end) of `text` to a half-open span of `original`."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(
                f"span ({start}, {end}) is outside the normalised text of length {len(self.text)}"
            )
        return self.offsets[start], self.offsets[end - 1] + 1


# Simplified spellings that OpenCC t2s rewrites all the same (昇 -> 升, 乾崑 -> 干昆): names the tagger must
# see as written. Their traditional spellings (昇騰) become these too. `bench/t2s_changes.py` measures
# which characters t2s changes in the simplified sentences of the dataset.
KEEP_WORDS = ("昇腾", "昇思", "乾崑")
# A line reads as traditional when t2s changes at least this share of its CJK characters (simplified
# text: 0 apart from KEEP_WORDS; traditional report text: 10-30%).
TRADITIONAL_SHARE = 0.04


@functools.lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


@functools.lru_cache(maxsize=1)
def _keep_forms() -> tuple[tuple[str, str], ...]:
    return tuple((_converter().convert(w), w) for w in KEEP_WORDS)


def _t2s(text: str) -> str:
    """OpenCC t2s with `KEEP_WORDS` kept: where t2s wrote a kept word's converted form, each character
    that was already the kept word's character is put back (昇騰 -> 升腾 -> 昇腾; 升腾 stays)."""
    converted = _converter().convert(text)
    if len(converted) != len(text) or not any(form in converted for form, _ in _keep_forms()):
        return converted
    out = list(converted)  # edited in place: one string copy per kept character would be quadratic
    for form, word in _keep_forms():
        start = converted.find(form)
        while start >= 0:
            for k, ch in enumerate(word):
                if text[start + k] == ch:
                    out[start + k] = ch
            start = converted.find(form, start + 1)
    return "".join(out)


def _changed_share(cjk: str) -> float:
    converted = _t2s(cjk)
    if len(converted) != len(cjk):
        return 1.0
    return sum(a != b for a, b in zip(cjk, converted)) / len(cjk)


def looks_traditional(text: str) -> bool:
    """True when t2s would change at least `TRADITIONAL_SHARE` of the CJK characters of `text`."""
    cjk = "".join(CJK_RE.findall(text))
    return bool(cjk) and _changed_share(cjk) >= TRADITIONAL_SHARE


def _simplify_line(line: str) -> str:
    if not looks_traditional(line):
        return line
    converted = _t2s(line)
    if len(converted) == len(line):
        return converted
    # A phrase conversion changed the length: convert character by character, which keeps the
    # one-to-one offset map.
    out: list[str] = []
    for ch in line:
        c = _t2s(ch) if CJK_RE.match(ch) else ch
        out.append(c if len(c) == 1 else ch)
    return "".join(out)


def to_simplified(text: str) -> str:
    """Each line that reads as traditional Chinese in simplified (OpenCC t2s, phrase-aware, `KEEP_WORDS`
    kept); other lines as they are. Same length as `text`, character for character."""
    return "\n".join(_simplify_line(line) for line in text.split("\n"))


def _graphemes(text: str) -> list[tuple[str, int]]:
    """Group each base character with the combining marks that follow it, with the base's index."""
    # Slices between grapheme starts, not repeated concatenation: a run of a million combining marks
    # (hostile input) must stay linear.
    starts = [i for i, ch in enumerate(text) if i == 0 or not unicodedata.combining(ch)]
    return [(text[a:b], a) for a, b in zip(starts, [*starts[1:], len(text)])]


# Circled and other enclosed numbers ("①", "⑳", "❶"): NFKC makes them plain digits, which run into a
# figure right after them ("①2025年以来" would read "12025年以来"); there they become "(1)".
_ENCLOSED_NUMBERS = frozenset(
    chr(c) for a, b in ((0x2460, 0x2473), (0x24F5, 0x24FE), (0x2776, 0x2793)) for c in range(a, b + 1)
)


# Superscripts: a footnote's marker after a figure, a Chinese word, a bracket or an acronym ("1.15⁴",
# "20.2%¹", "6.8万架²", "EFLOPS³", "⁽¹⁾"), which NFKC would run into the figure ("1.154"); dropped there.
# NFKC stands for a power: after one letter or a small one ("m²", "R²", "σ²", "ｍ²"), after a 10 ("1.5×10⁴"),
# and after a space or at the start of a line (the footnote itself, "¹ 按2.5kW标准机柜折算").
_SUPERSCRIPTS = frozenset("⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾⁺⁻")
_POWER_OF_TEN_RE = re.compile(r"(?<![\d.,])10$")  # "1.5×10⁴", "10⁻³": not "2.10¹" or "110¹"
_ACRONYM_RE = re.compile(r"[A-Z]{2}$")


_READ_IN_CONTEXT = _ENCLOSED_NUMBERS | _SUPERSCRIPTS


def _footnote_marker(before: str) -> bool:
    """Whether a run of superscripts after `before` (the text before it, NFKC) marks a footnote."""
    if not before or before[-1].isspace():
        return False
    last = before[-1]
    if last.isdigit():
        return _POWER_OF_TEN_RE.search(before) is None
    if unicodedata.category(last) in ("Ll", "Lu"):  # a Latin or Greek letter (Chinese is "Lo")
        return _ACRONYM_RE.search(before) is not None  # "EFLOPS³", not "m²", "R²" or "σ²"
    return True


def _enclosed(folded: str, following: str) -> str:
    """An enclosed number's NFKC (`folded`), bracketed when a figure follows it."""
    if folded.isascii() and folded.isdigit() and unicodedata.normalize("NFKC", following[:1])[:1].isdigit():
        return f"({folded})"
    return folded


def _nfkc_and_clean(text: str) -> tuple[list[str], list[int]]:
    chars: list[str] = []
    idx: list[int] = []
    groups = _graphemes(text)
    marker = False  # whether the current run of superscripts is a footnote's marker
    for k, (group, i) in enumerate(groups):
        if group == "\r":
            # "\r\n" becomes the "\n" that follows; a lone "\r" is a line break of its own.
            if text[i + 1 : i + 2] != "\n":
                chars.append("\n")
                idx.append(i)
            continue
        folded = unicodedata.normalize("NFKC", group)
        if group in _READ_IN_CONTEXT:  # one set lookup per grapheme: this loop is the normaliser's cost
            if group in _ENCLOSED_NUMBERS:
                folded = _enclosed(folded, groups[k + 1][0] if k + 1 < len(groups) else "")
            else:
                if k == 0 or groups[k - 1][0] not in _SUPERSCRIPTS:  # a run's first decides for the run
                    marker = _footnote_marker(unicodedata.normalize("NFKC", text[max(0, i - 4) : i]))
                if marker:
                    continue
        for ch in folded:
            cat = unicodedata.category(ch)
            if ch in "\n\f" or cat in ("Zl", "Zp"):  # a form feed is a page break
                chars.append("\n")
            elif ch == "\t" or cat == "Zs":
                chars.append(" ")
            elif cat[0] == "C":  # control, format (ZWSP, BOM, bidi marks), surrogate, private use, unassigned
                continue
            else:
                chars.append(ch)
            idx.append(i)
    return chars, idx


def _to_simplified_chars(chars: list[str]) -> list[str]:
    return list(to_simplified("".join(chars)))


def _drop_spans(chars: list[str], idx: list[int], pattern: re.Pattern[str], repl_newline: bool) -> None:
    text = "".join(chars)
    # One pass that copies what is kept (deleting each match in place is quadratic in the matches).
    out_c: list[str] = []
    out_i: list[int] = []
    last = 0
    for m in pattern.finditer(text):
        start, end = m.span()
        out_c += chars[last:start]
        out_i += idx[last:start]
        last = end
        if repl_newline and _SUMMARY_BREAK_RE.match(text, end) is not None:
            # English summaries end a sentence with a marker, a space and a capital or a bullet
            # ("...demand [5][26] The ..."): the marker is the only sentence boundary there.
            out_c.append("\n")
            out_i.append(idx[end])
            last = end + 1
    out_c += chars[last:]
    out_i += idx[last:]
    chars[:] = out_c
    idx[:] = out_i


def _recompose(chars: list[str], idx: list[int]) -> tuple[list[str], list[int]]:
    """NFKC each base with the combining marks that now follow it, mapped to the base's source index.

    Dropping a control character, a citation or a space can bring a mark next to a base it was not
    grouped with ("A\\x00\\u0301"); without this a second `normalize` would compose them, and
    `normalize` would not be idempotent."""
    marks = [k for k, ch in enumerate(chars) if unicodedata.combining(ch)]
    if not marks:
        return chars, idx
    out_c: list[str] = []
    out_i: list[int] = []
    k = 0
    for m in marks:
        if m < k:
            continue  # already part of a run
        start = m - 1 if m > 0 and not unicodedata.combining(chars[m - 1]) else m
        end = m + 1
        while end < len(chars) and unicodedata.combining(chars[end]):
            end += 1
        out_c += chars[k:start]
        out_i += idx[k:start]
        run = "".join(chars[start:end])
        composed = unicodedata.normalize("NFKC", run)
        if composed == run:
            out_c += chars[start:end]
            out_i += idx[start:end]
        else:
            out_c += list(composed)
            out_i += [idx[start]] * len(composed)
        k = end
    out_c += chars[k:]
    out_i += idx[k:]
    return out_c, out_i


def _collapse_whitespace(chars: list[str], idx: list[int]) -> tuple[list[str], list[int]]:
    out_c: list[str] = []
    out_i: list[int] = []
    for ch, i in zip(chars, idx):
        if ch == " ":
            if not out_c or out_c[-1] in (" ", "\n"):
                continue
        elif ch == "\n":
            while out_c and out_c[-1] == " ":
                out_c.pop()
                out_i.pop()
            if not out_c or out_c[-1] == "\n":
                continue
        out_c.append(ch)
        out_i.append(i)
    while out_c and out_c[-1] in (" ", "\n"):
        out_c.pop()
        out_i.pop()
    # A space between two CJK characters is layout, not content (PDF extraction, justified text).
    keep = [
        not (
            c == " "
            and 0 < k < len(out_c) - 1
            and CJK_RE.match(out_c[k - 1]) is not None
            and CJK_RE.match(out_c[k + 1]) is not None
        )
        for k, c in enumerate(out_c)
    ]
    return [c for c, k in zip(out_c, keep) if k], [i for i, k in zip(out_i, keep) if k]


def normalize(text: str) -> Normalized:
    """Normalise `text` (see the module docstring).

    Idempotent: ``normalize(normalize(t).text).text == normalize(t).text``."""
    if not isinstance(text, str):
        raise TypeError(f"normalize expects str, got {type(text).__name__}")
    chars, idx = _nfkc_and_clean(text)
    # Citations first: the line break a citation can leave decides which lines are tested for
    # traditional text, and must be there already, or a second `normalize` would decide differently.
    # Math and citations until neither is left: dropping "[5]" from "$1 [5] 2$" leaves a converter's span,
    # and reading "$[ 5 ]$" leaves a citation. Each round that changes anything shortens the text.
    dollars = any(d in text for d in _DOLLARS)
    while True:
        before = len(chars)
        if dollars:
            chars, idx = rewrite_math(chars, idx)
        _drop_spans(chars, idx, CITATION_RE, repl_newline=True)
        if not dollars or len(chars) == before:
            break
    chars = _to_simplified_chars(chars)
    chars, idx = _collapse_whitespace(chars, idx)
    chars, idx = _recompose(chars, idx)
    return Normalized(text="".join(chars), offsets=tuple(idx), original=text)


# The text-only fast path. `normalize` works character by character to keep the offset map; callers that
# only want the text (the server, `Tagger.tag`) can do the same steps on whole strings, in C, when the
# text holds only characters for which that gives the same result: no combining marks (per-grapheme and
# whole-string NFKC then agree), nothing that NFKC turns into a combining mark, a control or format
# character, a line separator or an unusual space, and no Hangul jamo (which compose with each other).
# Anything else takes `normalize` itself.
# `tests/test_normalize.py` checks that both paths agree.
_FAST_CANDIDATES = (
    (0x20, 0x7E), (0xA0, 0xFF), (0x2010, 0x205E), (0x2100, 0x22FF), (0x2460, 0x24FF), (0x25A0, 0x25FF),
    (0x3000, 0x303F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xFF01, 0xFF5E),
)  # fmt: skip
_HANGUL_JAMO = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))


def _plain(ch: str) -> bool:
    """A character that `_nfkc_and_clean` keeps as it is (or, for " ", turns into a space)."""
    cat = unicodedata.category(ch)
    return (
        unicodedata.combining(ch) == 0
        and cat[0] != "C"
        and cat not in ("Zl", "Zp")
        and (cat != "Zs" or ch == " ")
        and not any(a <= ord(ch) <= b for a, b in _HANGUL_JAMO)
    )


def _fast_ok(ch: str) -> bool:
    cat = unicodedata.category(ch)
    if unicodedata.combining(ch) or cat[0] == "C" or cat in ("Zl", "Zp") or ch in _READ_IN_CONTEXT:
        return False  # (an enclosed number's and a superscript's NFKC depend on the text around them)
    return all(_plain(c) for c in unicodedata.normalize("NFKC", ch))


@functools.lru_cache(maxsize=1)
def _fast_re() -> re.Pattern[str]:
    """A pattern matching texts made only of characters the fast path handles exactly."""
    ranges: list[list[int]] = []
    for lo, hi in _FAST_CANDIDATES:
        for cp in range(lo, hi + 1):
            if not _fast_ok(chr(cp)):
                continue
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    body = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )
    return re.compile(f"[\\t\\n\\r{body}]*")


_SPACES_RE = re.compile(" {2,}")
_CJK_SPACE_RE = re.compile(f"(?<=[{CJK}]) (?=[{CJK}])")


def _fast_text(text: str) -> str | None:
    """``normalize(text).text`` computed on whole strings, or None where that would not be exact."""
    if _fast_re().fullmatch(text) is None:
        return None
    nfkc = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    pieces: list[str] = []
    last = 0
    for m in CITATION_RE.finditer(nfkc):  # as `_drop_spans` with repl_newline=True
        pieces.append(nfkc[last : m.start()])
        last = m.end()
        if _SUMMARY_BREAK_RE.match(nfkc, last) is not None:
            pieces.append("\n")
            last += 1
    pieces.append(nfkc[last:])
    cited = "".join(pieces)
    # A converter's inline math, before or after the citations go: `normalize` reads it by character.
    if "$" in nfkc and (has_math(nfkc) or has_math(cited)):
        return None
    converted = to_simplified(cited)  # as `_to_simplified_chars`
    lines = (_SPACES_RE.sub(" ", line).strip(" ") for line in converted.split("\n"))
    return _CJK_SPACE_RE.sub("", "\n".join(line for line in lines if line))  # as `_collapse_whitespace`


def normalize_text(text: str) -> str:
    """``normalize(text).text``, faster: whole-string operations where they give the same text."""
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects str, got {type(text).__name__}")
    fast = _fast_text(text)
    return fast if fast is not None else normalize(text).text


def detect_lang(original: str) -> str:
    """'en', 'zh-Hant' or 'zh-Hans' for a sentence, from its original (un-normalised) text."""
    folded = unicodedata.normalize("NFKC", original)
    cjk = CJK_RE.findall(folded)
    latin = sum(1 for ch in folded if ch.isascii() and ch.isalpha())
    if latin > 2 * len(cjk):
        return "en"
    if not cjk:
        return "zh-Hans" if not latin else "en"
    return "zh-Hant" if _changed_share("".join(cjk)) >= TRADITIONAL_SHARE else "zh-Hans"
