"""Which line breaks of a report are hard wrapping, not structure.

The text layer of a PDF (pypdf, pdftotext) and many e-mailed reports break every line at the column width,
so one sentence runs over two or three lines ("...我们认为" / "光模块板块的景气度..."). The splitter treats a
line break as a boundary, so without this the model would see halves of sentences. Reports pasted from
web pages or Word hold one paragraph per line, and there a line that ends without a full stop (a heading,
an English bullet without a period) must stay a boundary.

`soft_breaks` tells the two apart per document: a wrapped document has a large share of its lines at nearly
the same display width (the column, at most a page's width), most of them cut mid-sentence, and hardly any
wider than that; a paragraph-per-line document has widths spread over hundreds of columns, and a list of
headlines has widths spread below its longest. A typeset note whose flattened tables and header block are
most of its lines has few lines at the column, but those stand at one width to a column or two (the typesetter
fills them) and run on: that also says wrapped. Inside a wrapped document, the break after a full-width
line that does not end a sentence is a wrap, unless the next line opens something of its own (a bullet, a
markdown heading, a figure caption or source line, a table row).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from fintag.data.normalize import CJK_RE

# The column is the 90th percentile of the lines' display widths. A wrapped document: at least
# MIN_AT_COLUMN of its lines lie within AT_COLUMN of the column, at most WIDE_SHARE are wider than WIDE_FACTOR
# columns, and the column is COLUMN_RANGE wide (an A4 page at 8-12 pt holds 30-75 Chinese characters a line;
# the seeds' paragraph lines have a 90th percentile of 229-292 columns). Measured on the seeds typeset as
# PDFs: 37-98% of the lines at the column, none wider; the seeds as text: 2-43% at the column, 6.5-9% wider.
# A two-page note with a header block, key-value lines and bullets has only a quarter of its lines at the
# column (twenty-ninth session), hence 0.2; MIN_RUNNING_ON keeps one-paragraph-a-line notes out.
AT_COLUMN = (0.9, 1.1)
MIN_AT_COLUMN = 0.2
WIDE_FACTOR = 1.15
WIDE_SHARE = 0.04
COLUMN_RANGE = (30, 160)
MIN_LINES = 3
# Of the lines at the column, at least this share must not end a sentence (a wrap cut them).
MIN_RUNNING_ON = 0.5
# Fewer lines at the column still say wrapped when at least TIGHT_LINES of them, and TIGHT_SHARE of all lines,
# stand within TIGHT of it and TIGHT_RUNNING_ON of those run on. A note typeset at 45 characters a line with
# a flattened forecast table had 16% of its lines at the column (the thirty-second session); lines of one
# paragraph each, or headlines, are rarely six within 3% of one width and all cut mid-sentence.
TIGHT = 0.03
TIGHT_LINES = 6
TIGHT_SHARE = 0.1
TIGHT_RUNNING_ON = 0.8
# Inside a wrapped document, a line at least this share of the column wide is full (a long word or a
# kinsoku rule can push the last few characters to the next line).
FULL_SHARE = 0.8
# A shorter line, at least PUSHED_SHARE of the column wide, was wrapped too when the next line's first word
# (a run of ASCII: a figure, "251.37/306.84/365.12", or an English word) would not have fitted after it: the
# typesetter pushed it down whole ("我们预计公司2026-2028年营业收入分别为" / "251.37/306.84/365.12亿元,...").
PUSHED_SHARE = 0.5
_FIRST_WORD_RE = re.compile(r"[!-~]*[0-9A-Za-z][!-~]*")  # a word, not a rule ("=====", "+-----+")


def display_width(line: str) -> int:
    """Columns a line takes in a monospaced layout: 2 for East Asian wide and full-width characters."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def soft_breaks(
    lines: Sequence[str],
    can_continue: Callable[[str], bool],
    opens_unit: Callable[[str], bool],
    boilerplate: Sequence[bool] | None = None,
    after: str | None = None,
    after_boilerplate: bool = False,
) -> set[int]:
    """Indices i such that the break after `lines[i]` is hard wrapping (join `lines[i]` and `lines[i+1]`).

    `lines` are the lines of normalised text. The splitter says what its units look like: only a line for
    which `can_continue` is true (it does not end a sentence, it is not a table row) runs on into the next,
    and never into one for which `opens_unit` is true (a bullet, a heading, a caption, a table row). Lines
    whose `boilerplate` flag is true (a disclaimer pasted as whole paragraphs after a wrapped report) do not
    count in the widths that say whether the document is wrapped. `after`: the line that follows `lines`
    (the next page's first), which the last of them may run into (index `len(lines) - 1`); it counts in no
    width (`after_boilerplate`: its flag)."""
    widths = [display_width(line) for line in lines]
    plate = list(boilerplate) if boilerplate is not None else [False] * len(lines)
    counted = [(w, line) for w, line, p in zip(widths, lines, plate, strict=True) if w and not p]
    present = sorted(w for w, _ in counted)
    if len(present) < MIN_LINES:
        return set()
    column = present[int(0.9 * (len(present) - 1))]
    at_column = sum(AT_COLUMN[0] * column <= w <= AT_COLUMN[1] * column for w in present)
    wide = sum(w > WIDE_FACTOR * column for w in present)
    # Wrapping cuts lines mid-sentence: most full lines run on. A short note with one paragraph a line
    # can have half its lines near one width, but they end their sentences.
    running_on = sum(
        AT_COLUMN[0] * column <= w <= AT_COLUMN[1] * column and can_continue(line) for w, line in counted
    )
    tight = [line for w, line in counted if abs(w - column) <= TIGHT * column]
    many_at_column = (
        at_column >= max(MIN_LINES, MIN_AT_COLUMN * len(present)) and running_on >= MIN_RUNNING_ON * at_column
    )
    tight_running_on = sum(map(can_continue, tight))
    few_at_one_width = len(tight) >= max(TIGHT_LINES, TIGHT_SHARE * len(present))
    few_at_one_width = few_at_one_width and tight_running_on >= TIGHT_RUNNING_ON * len(tight)
    if (
        not COLUMN_RANGE[0] <= column <= COLUMN_RANGE[1]
        or wide > WIDE_SHARE * len(present)
        or not (many_at_column or few_at_one_width)
    ):
        return set()
    if after is not None:
        lines, widths, plate = [*lines, after], [*widths, display_width(after)], [*plate, after_boilerplate]
    return {
        i
        for i in range(len(lines) - 1)
        if (
            widths[i] >= FULL_SHARE * column
            or (_pushed_down(widths[i], lines[i + 1], column) and not opens_unit(lines[i]))
        )
        and widths[i + 1]
        and can_continue(lines[i])
        and not opens_unit(lines[i + 1])
        # a page's footer inside a wrapped sentence ("请务必阅读正文之后的免责声明部分") does not continue it
        and (plate[i] or not plate[i + 1])
    }


def _pushed_down(width: int, nxt: str, column: int) -> bool:
    """Whether a line `width` wide ended where it did because `nxt`'s first word did not fit after it."""
    m = _FIRST_WORD_RE.match(nxt)
    return m is not None and width >= PUSHED_SHARE * column and width + len(m.group()) > column


# An English word hyphenated at the column ("track-" / "ing ahead") is one word when the word without the
# hyphen is common (wordfreq's Zipf frequency), unless both halves are common words themselves, as a
# compound's are ("in-" / "line", "e-" / "commerce", "well-" / "being"; "fleet-" / "scale" is no word
# joined), or the word joined is a very common one ("be-" / "cause").
_WORD_ZIPF = 3.0
_HALF_ZIPF = 4.3
_VERY_COMMON_ZIPF = 5.0
_HYPHENATED_RE = re.compile(r"(?<![A-Za-z-])([A-Za-z]*[a-z])-$")
_WORD_START_RE = re.compile(r"^[a-z]+")


def soft_hyphen(left: str, right: str) -> bool:
    """Whether `left` ends with a hyphen the typesetter added to cut a word that `right` finishes."""
    m, n = _HYPHENATED_RE.search(left), _WORD_START_RE.match(right)
    if m is None or n is None:
        return False
    from wordfreq import zipf_frequency

    left_word, right_word = m.group(1), n.group(0)
    joined = zipf_frequency(left_word + right_word, "en")
    compound = min(zipf_frequency(left_word, "en"), zipf_frequency(right_word, "en")) >= _HALF_ZIPF
    return joined >= _WORD_ZIPF and (joined >= _VERY_COMMON_ZIPF or not compound)


def joiner(left: str, right: str) -> str:
    """What replaces a wrapped line break: nothing next to Chinese, after a hyphen or an opening bracket or
    before closing punctuation, or inside a figure that follows Chinese, else a space."""
    a, b = left[-1], right[0]
    if a in "-([{/" or b in ",.;:!?)]}%":
        return ""
    if (a.isdigit() or a in ".,") and b.isdigit():  # a figure cut at the column ("超过1" / "10%", "增长3." /
        # "5%", "约为1," / "234.56亿元", "。202" / "5年"), in Chinese text: Chinese before or right after it
        before = left.rstrip("0123456789.,")[-1:]
        after = right.lstrip("0123456789.,%")[:1]
        chinese = any(ch and CJK_RE.match(ch) for ch in (before, after))
        return "" if chinese and not (before.isascii() and before.isalpha()) else " "
    if any(CJK_RE.match(ch) or unicodedata.east_asian_width(ch) in "WF" for ch in (a, b)):
        return ""
    return " "
