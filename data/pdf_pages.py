"""Page furniture of PDF text layers: running headers, footers and page numbers.

Broker reports print the same header ("证券研究报告·行业周报") and footer ("请务必阅读正文之后的免责声明",
a page number) on every page. Left in the text they sit between the last line of one page and the first
line of the next, so a sentence that runs over a page break is cut in two, and the footer is tagged once a
page.
`strip_running_lines` removes a line from the top or bottom of the pages when the same line (digits aside)
stands there on most pages and does not end a sentence (but the first page's header line with a date: it is
often the report's only date); text that appears on one page only is never touched.
Text copied out of a PDF has no page breaks, but its numbered footers say where pages end (`pages_of_text`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter

from fintag.data.fields import date_in
from fintag.data.split import ends_sentence
from fintag.data.unwrap import display_width

logger = logging.getLogger(__name__)

EDGE_LINES = 3  # lines looked at from the top and from the bottom of each page
MIN_PAGES = 3  # fewer pages than this: nothing is furniture (but a two-page report's running lines)
MIN_SHARE = 0.6  # a line is furniture when it stands at an edge of at least this share of the pages

_DIGITS_RE = re.compile(r"\d+")


def _key(line: str) -> str:
    return _DIGITS_RE.sub("#", " ".join(line.split()))


def _edges(lines: list[str], bottom: bool = True) -> list[int]:
    """Indices of the lines that may be furniture: near the top or (unless `bottom` is false) the bottom,
    not ending a sentence (a header or footer is a title or a number; a line of body text that ends a
    sentence stays, whatever repeats)."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    near = sorted(set(filled[:EDGE_LINES] + (filled[-EDGE_LINES:] if bottom else [])))
    return [i for i in near if not ends_sentence(lines[i])]


# A page's footer with its number ("请务必阅读正文之后的免责声明部分  3 / 12", "第 3 页 共 12 页", "- 3 -",
# "Page 3 of 12").
_PAGE_NUMBER_RE = re.compile(
    r"(?:第\s*(?P<a>\d{1,3})\s*页(?:\s*[,，/]?\s*共\s*\d{1,3}\s*页)?|(?<![\d./])(?P<b>\d{1,3})\s*/\s*\d{1,3}|"
    r"^-\s*(?P<c>\d{1,3})\s*-|\bPage\s+(?P<d>\d{1,3})(?:\s+of\s+\d{1,3})?)\s*$",
    re.IGNORECASE,
)


def pages_of_text(text: str) -> list[str] | None:
    """The pages of a text pasted from a PDF without page breaks, cut after its numbered page footers: a
    line that ends with a page number ("3 / 12", "第3页", "- 3 -", "Page 3"), does not end a sentence and
    stands (numbers aside) at least `MIN_PAGES` times with its page numbers rising; None when the text has
    no such footer (a date "2025/11/21" or figures "6.12/8.45" are no page numbers)."""
    lines = text.split("\n")
    numbers: dict[str, list[int]] = {}
    keys = []
    for line in lines:
        m = None if ends_sentence(line) else _PAGE_NUMBER_RE.search(line)
        key = _key(line) if m else ""
        keys.append(key)
        if m:
            numbers.setdefault(key, []).append(int(next(g for g in m.groups() if g)))
    footers = {k for k, n in numbers.items() if len(n) >= MIN_PAGES and all(map(int.__lt__, n, n[1:]))}
    if not footers:
        return None
    pages, start = [], 0
    for i, k in enumerate(keys):
        if k in footers:
            pages.append("\n".join(lines[start : i + 1]))
            start = i + 1
    pages.append("\n".join(lines[start:]))
    return pages


# A watermark a reader's copy is stamped with ("仅供XX基金内部使用 李明远 2026-11-28 09:41"), which the text
# layer puts anywhere on the page, in the middle of a sentence too: the same line on most pages, naming
# whom the copy is for.
_WATERMARK_RE = re.compile(
    r"仅供|内部使用|仅限|机构专用|专用版|下载|授权给?\S{2,20}使用|For\s+(?:internal|the\s+exclusive)\s+use|"
    r"Confidential|Prepared\s+for",
    re.IGNORECASE,
)
_WATERMARK_MAX = 80  # characters: a stamp is one short line, never a table's row


def _watermarks(split: list[list[str]]) -> set[str]:
    """Keys of the watermark lines: on most pages, anywhere, naming whom the copy is for."""
    seen: Counter[str] = Counter()
    for lines in split:
        seen.update(  # once a page, however often it is stamped there
            {
                _key(line)
                for line in lines
                if len(line) <= _WATERMARK_MAX
                and "|" not in line
                and _WATERMARK_RE.search(line)
                and not ends_sentence(line)
            }
        )
    return {key for key, n in seen.items() if n >= max(2, MIN_SHARE * len(split))}


def strip_running_lines(pages: list[str]) -> list[str]:
    """`pages` (the text of each page) without the lines that repeat at the top or bottom of most pages
    (of both pages of a two-page report), and without a watermark that repeats anywhere on them."""
    if len(pages) < 2:
        return pages
    split = [page.split("\n") for page in pages]
    marks = _watermarks(split)
    if marks:  # first: a stamp at the top or bottom would hide the header or footer behind it
        split = [[line for line in lines if _key(line) not in marks] for lines in split]
        logger.debug("dropped the watermark lines %s", sorted(marks))
    seen: Counter[str] = Counter()
    for lines in split:
        seen.update({_key(lines[i]) for i in _edges(lines)})
    least = 2 if len(pages) == 2 else MIN_PAGES
    running = {key for key, n in seen.items() if n >= max(least, MIN_SHARE * len(pages))}
    if not running:
        return ["\n".join(lines) for lines in split]
    out: list[str] = []
    dropped = 0
    for n, lines in enumerate(split):
        drop = {i for i in _edges(lines) if _key(lines[i]) in running}
        if n == 0 and len(pages) == 2:  # a two-page report's second header may repeat the first page's title:
            drop = {i for i in drop if 2 * i >= len(lines)}  # its first page keeps the lines at its top
        elif n == 0:  # the first page's header line with a date stays: often the report's only date
            drop = {i for i in drop if date_in(lines[i]) is None or i not in _edges(lines, bottom=False)}
        dropped += len(drop)
        out.append("\n".join(line for i, line in enumerate(lines) if i not in drop))
    logger.debug(
        "dropped %d running header/footer lines (%d kinds) from %d pages", dropped, len(running), len(pages)
    )
    return out


# A footnote at a page's foot: a line that starts with its superscript marker ("¹ 资料来源:...", "⁽²⁾ ...").
# A body line can start with a reference mark the column pushed down ("...联盟的数据" / "¹，2026年..."):
# punctuation after the marker says it is one.
_FOOTNOTE_RE = re.compile(r"^\s*(?:[⁰¹²³⁴⁵⁶⁷⁸⁹]+|⁽[⁰¹²³⁴⁵⁶⁷⁸⁹]+⁾)\s*[^\s，,。.、；;：:)）%]")
FOOT_LINES = 12  # the lines at a page's foot where its footnotes are looked for
# A body's last line this share of its column's width or wider may be a wrapped sentence's (figures print
# narrower than they count: "...预测至610.45/682.30/756.18亿元(原预测为" is 61 of a 70-wide column).
CUT_WIDTH = 0.75


def _foot_start(lines: list[str]) -> int | None:
    """Where a page's footnotes start: the first footnote line, among the page's last `FOOT_LINES`, below
    which every line is a footnote or the wrapped rest of the line above it (which ends no sentence); None
    if the page ends otherwise."""
    for k in range(max(0, len(lines) - FOOT_LINES), len(lines)):
        if _FOOTNOTE_RE.match(lines[k]) and all(
            _FOOTNOTE_RE.match(lines[j]) or not ends_sentence(lines[j - 1]) for j in range(k + 1, len(lines))
        ):
            return k
    return None


def _cut_at_column(body: list[str]) -> bool:
    """Whether the last line of a page's body ends no sentence and is about as wide as its column (the
    90th percentile of its lines' widths): a sentence wrapped there, not a source line or a heading."""
    widths = sorted(w for w in map(display_width, body) if w)
    if not widths or ends_sentence(body[-1]):
        return False
    return display_width(body[-1]) >= CUT_WIDTH * widths[int(0.9 * (len(widths) - 1))]


def footnotes_after_sentence(pages: list[str]) -> list[str]:
    """`pages` with the footnotes at a page's foot moved below the sentence they cut: when the body's last
    line above them runs on to the next page ("...(原预测为" / "¹ 资料来源:..." / next page "628.90/...亿元),
    对应EPS..."), they go after the next page's first line that ends a sentence, so the sentence is read
    whole. Footnotes under a finished sentence stay where they are."""
    split = [page.split("\n") for page in pages]
    moved = 0
    for n in range(len(split) - 1):
        lines = split[n]
        last = len(lines)
        while last and not lines[last - 1].strip():
            last -= 1
        k = _foot_start(lines[:last])
        if not k or not _cut_at_column(lines[:k]):
            continue
        notes, split[n], nxt = lines[k:last], lines[:k], split[n + 1]
        # After the next page's first sentence end above its own footnotes, or else right above them, so the
        # notes of two pages in a row keep their order.
        foot = _foot_start(nxt) or len(nxt)
        end = next((j + 1 for j in range(foot) if nxt[j].strip() and ends_sentence(nxt[j])), foot)
        split[n + 1] = nxt[:end] + notes + nxt[end:]
        moved += len(notes)
    if moved:
        logger.debug("moved %d footnote lines below the sentences they cut", moved)
    return ["\n".join(lines) for lines in split]
