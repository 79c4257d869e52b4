"""Inline math of PDF-to-markdown converters, read back as the figures the PDF showed.

MinerU and marker turn many of a report's figures into inline LaTeX, a space between every token:
"同比增长 $4 4 . 4 \\%$", "$2 0 2 6 \\mathrm { E }$", "$5 5 \\% \\sim 6 0 \\%$", "$2 5 \\times$", a footnote's
"${ } ^ { 1 }$". Left as it is, a report's sentence is cut at the "." of "$4 4 . 4" and the model reads
"\\mathrm". `rewrite_math` turns such a span into plain text ("44.4%", "2026E", "55%~60%", "25×") and drops a
span that is only a superscript figure (a footnote's marker, as the normaliser drops "[5]").

A span is read only when it is a converter's: between single "$", on one line, no Chinese in it, and either a
LaTeX command or brace in it or at least two figures and every token a single character ("$2 0 2 5$"); its
"$" opens no currency's amount ("US$5", "HK$ 5 8") and no figure follows its closing "$" ("$5 - $6"). So
"$3.2bn to $4.5bn", "$5 ~ $6" and "US$34.00 ... US$40.00" are prose, and stay. A span with anything this
module does not know (\\frac, a subscript, a superscript other than a power's digits, a footnote's or
"^{\\circ}") stays as written: a formula is not guessed at.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

# From a single "$" (not "$$", not "\$") to the next one on the same line that no figure follows ("$5 - $6"
# is two prices); "\$" inside is a dollar sign.
MATH_RE = re.compile(r"\$(?!\$)((?:\\\$|[^$\n]){1,200}?)(?<!\\)\$(?![$\d])")
# What a span sits against, past one space, when that space is the converter's: Chinese text and
# punctuation (wide characters) on either side, an opening bracket before it, closing punctuation after it.
_OPENERS = "([“‘"
_CLOSERS = ",.;:!?)]%”’"
_COMMAND_RE = re.compile(r"\\(?:[A-Za-z]+|[^A-Za-z\s])")

# Commands that wrap text in a font: their group's contents are kept.
_FONTS = frozenset(
    "mathrm text textrm mathbf textbf mathit textit mathsf textsf mathtt texttt operatorname boldsymbol "
    "rm bf it mathbb".split()
)
# Commands that stand for a character (or for nothing: sizing of delimiters).
_SYMBOLS = {
    "%": "%", "$": "$", "&": "&", "#": "#", "_": "_", "{": "{", "}": "}",
    "times": "×", "cdot": "·", "div": "÷", "sim": "~", "approx": "≈", "pm": "±", "mp": "∓",
    "le": "≤", "leq": "≤", "leqslant": "≤", "ge": "≥", "geq": "≥", "geqslant": "≥", "neq": "≠", "ne": "≠",
    "to": "→", "rightarrow": "→", "longrightarrow": "→", "leftarrow": "←", "uparrow": "↑",
    "downarrow": "↓", "bullet": "•", "ldots": "...", "cdots": "...", "dots": "...", "prime": "′", "circ": "°",
    "left": "", "right": "", "big": "", "Big": "", "bigl": "", "bigr": "", "!": "",
    ",": " ", ";": " ", ":": " ", " ": " ", "quad": " ", "qquad": " ",
}  # fmt: skip
_SPACES = frozenset(" \t")


class _Unknown(Exception):
    """Something in a span this module does not read: the span stays as written."""


def _wide(ch: str) -> bool:
    """A Chinese character or a full-width form (east Asian wide)."""
    return unicodedata.east_asian_width(ch) in "WF"


def is_converter_math(body: str) -> bool:
    """Whether `body` (between the "$") reads as a converter's inline math, not as prose with two "$": no
    Chinese, and a command or brace, or at least two figures, every token one character ("2 0 2 5")."""
    if not body.strip() or any(_wide(ch) for ch in body):
        return False
    if _COMMAND_RE.search(body) or "{" in body or "}" in body:
        return True
    tokens = body.split()
    return len(tokens) >= 2 and all(len(t) == 1 for t in tokens) and sum(t.isdigit() for t in tokens) >= 2


def _spans(text: str) -> Iterator[tuple[re.Match[str], list[tuple[str, int]]]]:
    """Each converter's span of `text` with its pieces. Every "$" is tried as an opening one, so a
    currency's "$" ("costs $5 and grew $1 2 \\%$") does not pair off the span's own."""
    pos = text.find("$")
    while pos != -1:
        m = None
        before = text[pos - 1] if pos else " "
        # A currency's "$" ("US$5", "HK$ 5 8"), not a footnote's after a word ("agent${ } ^ { 2 }$").
        currency = before.isascii() and before.isalpha() and text[pos + 1 : pos + 2] in " 0123456789"
        if not currency and before not in "$\\" and text[pos + 1 : pos + 2] != "$":  # nor "\$", "$$"
            m = MATH_RE.match(text, pos)
        pieces = _read(m.group(1), m.start(1)) if m else None
        if m and pieces is not None:
            yield m, pieces
            pos = text.find("$", m.end())
        else:
            pos = text.find("$", pos + 2 if text[pos + 1 : pos + 2] == "$" else pos + 1)


def has_math(text: str) -> bool:
    """Whether `rewrite_math` would change `text`."""
    return "$" in text and next(_spans(text), None) is not None


def _group(body: str, i: int) -> int:
    """The index after the brace group that opens at `body[i]` ("{")."""
    depth = 0
    for k in range(i, len(body)):
        if body[k] == "{":
            depth += 1
        elif body[k] == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    raise _Unknown


def _pieces(body: str, base: int) -> list[tuple[str, int]]:
    """The plain text of `body` as (text, index in `body` + `base`) pieces; raises `_Unknown`."""
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in _SPACES or ch in "{}":
            i += 1
        elif ch == "~":
            out.append((" ", base + i))
            i += 1
        elif ch in "^_":
            i = _script(body, i, base, out)
        elif ch == "\\":
            m = _COMMAND_RE.match(body, i)
            if m is None:
                raise _Unknown
            name = m.group(0)[1:]
            i = m.end()
            if name in _FONTS or name == "textcircled":
                while i < len(body) and body[i] in _SPACES:
                    i += 1
                if i < len(body) and body[i] == "{":
                    end = _group(body, i)
                    inner = _pieces(body[i + 1 : end - 1], base + i + 1)
                    if name == "textcircled":  # "①" as a list's number: "(1)"
                        inner = [("(", base + m.start()), *inner, (")", base + end - 1)]
                    out += inner
                    i = end
            elif name in _SYMBOLS:
                if _SYMBOLS[name]:
                    out.append((_SYMBOLS[name], base + m.start()))
            else:
                raise _Unknown
        else:
            out.append((ch, base + i))
            i += 1
    return out


def _script(body: str, i: int, base: int, out: list[tuple[str, int]]) -> int:
    """A superscript at `body[i]`: a power's digits ("m^{2}"), "^{\\circ}" (a degree) or "^{\\prime}";
    anything else is unknown. (A span that is only a superscript figure is a footnote's marker: `_read`.)"""
    if body[i] != "^":
        raise _Unknown
    k = i + 1
    while k < len(body) and body[k] in _SPACES:
        k += 1
    end = _group(body, k) if k < len(body) and body[k] == "{" else k + 1
    inner = "".join(body[k:end].split()).strip("{}")
    if inner.isascii() and inner.isdigit():  # "m^{2}": "m2", as the normaliser reads "m²"
        out.append((inner, base + k))
    elif inner in ("\\circ", "\\prime"):
        out.append((_SYMBOLS[inner[1:]], base + i))
    else:
        raise _Unknown
    return end


_FOOTNOTE_RE = re.compile(r"(?:\{\s*\})?\s*\^\s*(?:\{\s*[\d\s,*\-]+\s*\}|\d)")


def _read(body: str, base: int) -> list[tuple[str, int]] | None:
    """The pieces a span's `body` reads as ([] for a footnote's marker), or None to leave it as written."""
    if not is_converter_math(body):
        return None
    if _FOOTNOTE_RE.fullmatch(body.strip()):
        return []
    try:
        pieces = _pieces(body, base)
    except _Unknown:
        return None
    # Spaces a converter put between tokens are not the PDF's; "~" and "\," are, but not at the ends.
    while pieces and pieces[0][0] == " ":
        pieces.pop(0)
    while pieces and pieces[-1][0] == " ":
        pieces.pop()
    return pieces


def rewrite_math(chars: list[str], idx: list[int]) -> tuple[list[str], list[int]]:
    """`chars` (one character each, `idx` their source indices) with every converter's inline math span
    turned into plain text; each character written keeps the source index of what it came from."""
    if "$" not in chars:
        return chars, idx
    text = "".join(chars)
    out_c: list[str] = []
    out_i: list[int] = []
    last = 0
    for m, pieces in _spans(text):
        out_c += chars[last : m.start()]
        out_i += idx[last : m.start()]
        last = m.end()
        if pieces:
            # The spaces a converter sets around a span in Chinese text are not the PDF's
            # ("增长 $4 4 \\%$ ，").
            if len(out_c) >= 2 and out_c[-1] == " " and (_wide(out_c[-2]) or out_c[-2] in _OPENERS):
                out_c.pop()
                out_i.pop()
            after = text[last + 1 : last + 2]
            if text[last : last + 1] == " " and after and (_wide(after) or after in _CLOSERS):
                last += 1
        written = [(ch, idx[k]) for piece, k in pieces for ch in piece]
        if written:  # the span's first and last characters stand for its "$"s: a sentence's span covers them
            written[0] = (written[0][0], idx[m.start()])
            if len(written) > 1:
                written[-1] = (written[-1][0], idx[m.end() - 1])
        out_c += [ch for ch, _ in written]
        out_i += [k for _, k in written]
    out_c += chars[last:]
    out_i += idx[last:]
    return out_c, out_i
