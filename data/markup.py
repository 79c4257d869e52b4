"""Web pages (.html) and Word files (.docx) as the plain text the splitter reads.

A report saved from a browser (a broker's site, a research portal, a WeChat article) or written in Word
holds its paragraphs as elements, not lines. Each paragraph, heading, list item and table row becomes one
line, as the same report pasted into a text file reads: inline markup (bold, links, spans) runs on in its
line, HTML's whitespace collapses as a browser shows it, a list item starts with "- ", and a table row is
"| cell | cell |" (a markdown row: the splitter reads a rating or target price in its cells as a field and
the row itself as a table row), unless a cell holds several paragraphs (a table used for layout: each cell's
lines in turn). Page furniture that is not the report (scripts, styles, navigation, forms)
is left out; so are a Word file's running headers and footers, as a PDF's are (`fintag.data.pdf_pages`),
while its text boxes (a first page's sidebar of rating, target price and analysts) are read where they are
anchored. Parsing is BeautifulSoup's and python-docx's, a page's charset the reader's
(`fintag.data.reader`); this module only lays the elements out as lines.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

logger = logging.getLogger(__name__)

HTML_SUFFIXES = (".html", ".htm")
DOCX_SUFFIXES = (".docx",)

# Elements that start and end a line; everything else is inline and runs on in the line it stands in.
_BLOCKS = frozenset(
    "address article aside blockquote body caption center dd details dialog div dl dt fieldset figcaption "
    "figure footer h1 h2 h3 h4 h5 h6 header hgroup hr html li main ol p section summary table tbody thead "
    "tfoot ul".split()
)
# Elements whose text is not the report's: code, styles, navigation, forms, embedded media.
_SKIPPED = frozenset(
    "script style noscript template head title meta link nav form button select option textarea input "
    "svg canvas iframe object embed audio video map".split()
)
_SPACE_RE = re.compile(r"\s+")
_WIDE = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"  # CJK characters and punctuation, full-width forms
_WIDE_BREAK_RE = re.compile(rf"(?<=[{_WIDE}])[ \t\r]*\n\s*(?=[{_WIDE}])")


def html_to_text(html: str) -> str:
    """The text of an HTML page, one block (paragraph, heading, list item, table row) a line."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")  # closes what a page may leave open (<p>, <li>, <td>) as browsers do
    lines: list[str] = []
    line: list[str] = []
    _html_block(soup, lines, line)
    _flush(lines, line)  # text outside any block ("<div>...</div>第二段。", a page of plain text)
    return "\n".join(lines)


# A table a PDF-to-markdown converter (MinerU) writes into markdown as HTML, on one line or several, maybe
# in <html><body>: the innermost first, then the tables around it (`plain_markdown`).
_EMBEDDED_TABLE_RE = re.compile(
    r"(?:<html>\s*<body>\s*)?<table\b(?:(?!<table\b).)*?</table>(?:\s*</body>\s*</html>)?",
    re.IGNORECASE | re.DOTALL,
)
_TABLE_DEPTH = 4  # tables nested this deep are laid out; deeper ones stay as written
_TABLE_START_RE = re.compile(r"<table\b", re.IGNORECASE)
# What converters add around the text: markdown's images ("![](images/3f1a....jpg)"; the caption is a line of
# its own), footnote references ("[^2]", marker's "[1](#fn1)") and marker's page anchors ("<span
# id="page-5-1"></span>"); links to a page, a file or an anchor read as their text ("[公司公告](http://...)",
# "[Figure 3](#page-5-1)"). A target may hold one level of brackets ("images/a(1).jpg") and a title.
_TARGET = r"\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"\n]*\")?\)"
_MD_IMAGE_RE = re.compile(rf"!\[[^\[\]\n]*\]{_TARGET}")
_MD_NOTE_RE = re.compile(r"\[\^[^\]\s]{1,20}\](?!:)|\[\d{1,3}\]\(#[^)\s]*\)|</?span\b[^>\n]*>")
_MD_LINK_RE = re.compile(
    rf"\[([^\[\]\n]+)\](?=\((?:https?://|www\.|#|\.{{1,2}}/|/[A-Za-z0-9_.~-]|[A-Za-z0-9_./-]+\.(?:html?|pdf|aspx?)\b))"
    rf"{_TARGET}"
)


MARKDOWN_SUFFIXES = (".md", ".markdown")
# A pair of bold marks on one line, against the text they mark and after no figure or star ("**事件**:",
# "**毛利率短期承压。**前三季度"); a significance level's "0.05**", a masked "138****5678" or "王**" is
# no pair.
_BOLD_RE = re.compile(r"(?<![\d*])\*\*(?=[^\s*])([^*\n]*?[^\s*])\*\*(?!\*)")


def plain_markdown(text: str) -> str:
    """Text (markdown, a text file) without what PDF-to-markdown converters (MinerU, marker) add that is no
    report text: each HTML table laid out as `html_to_text` lays a page's, a row of keys and values a
    markdown row ("| 投资评级 | 买入(维持) |") on a line of its own; images, footnote references and page
    anchors dropped; links read as their text."""
    for _ in range(_TABLE_DEPTH):
        if not _TABLE_START_RE.search(text):
            break
        text = _EMBEDDED_TABLE_RE.sub(lambda m: "\n" + html_to_text(m.group(0)) + "\n", text)
    if "](" in text or "[^" in text or "<span" in text:
        text = _MD_LINK_RE.sub(r"\1", _MD_NOTE_RE.sub("", _MD_IMAGE_RE.sub("", text)))
    return text


def without_bold(text: str) -> str:
    """A markdown file's text without its bold marks, so that a bold lead-in ("**毛利率短期承压。**前三季度
    ...") is a sentence of its own and an analyst's "**分析师：** 周景行" a contact line. For .md files only,
    after the paragraphs are read (a line that opens with "**" opens a unit there): text files keep theirs,
    as the seeds' are in the dataset."""
    return _BOLD_RE.sub(r"\1", text) if "**" in text else text


def _collapse(text: str) -> str:
    """Whitespace as a browser shows it: a line break of the source between two Chinese characters is
    nothing (CSS Text's segment-break rule), any other run of whitespace one space."""
    return _SPACE_RE.sub(" ", _WIDE_BREAK_RE.sub("", text)).strip()


def _flush(lines: list[str], line: list[str]) -> None:
    text = _collapse("".join(line))
    if text:
        lines.append(text)
    line.clear()


def _html_block(node, lines: list[str], line: list[str]) -> None:
    """Lay `node`'s children out: inline text into `line`, each block on lines of its own."""
    from bs4.element import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

    for child in node.children:
        if isinstance(child, NavigableString):
            if not isinstance(child, Comment | Declaration | Doctype | ProcessingInstruction):
                line.append(str(child))
            continue
        if not isinstance(child, Tag) or child.name in _SKIPPED or _is_furniture(child):
            continue
        name = child.name
        if name == "br":
            _flush(lines, line)
        elif name == "tr":
            _flush(lines, line)
            lines.extend(_row_lines([_cell_lines(c) for c in child.find_all(["td", "th"], recursive=False)]))
        elif name == "dl":  # a definition list of keys and values: "Rating" / "HOLD (from BUY)"
            _flush(lines, line)
            lines.extend(_definition_lines(child))
        elif name == "pre":
            _flush(lines, line)
            lines.extend(s.strip() for s in child.get_text().split("\n") if s.strip())
        elif name == "li":
            _flush(lines, line)
            item: list[str] = []
            item_line: list[str] = []
            _html_block(child, item, item_line)
            _flush(item, item_line)
            if item:
                item[0] = "- " + item[0]
            lines.extend(item)
        elif name in _BLOCKS or name in ("td", "th"):
            _flush(lines, line)
            _html_block(child, lines, line)
            _flush(lines, line)
        else:
            _html_block(child, lines, line)


# A page's furniture by its class or id, as sites name it ("nav", "top-menu", "breadcrumb", "share-bar",
# "footer", "related", "cookie-banner", "ad_top"): not the report.
_FURNITURE_RE = re.compile(
    r"(?:^|[-_\s])(?:nav|navbar|menu|breadcrumbs?|crumbs?|share[-_]?(?:bar|box|btns?|buttons?|tools?|links?)|"
    r"social|toolbar|footer|copyright|login|search|topbar|subnav|sitemap|related|recommend\w*|cookies?|"
    r"ads?|advert\w*|hot-?list)(?:$|[-_\s\d])",
    re.IGNORECASE,
)


def _is_furniture(tag) -> bool:
    names = " ".join([*(tag.get("class") or []), tag.get("id") or ""])
    return bool(names.strip()) and _FURNITURE_RE.search(names) is not None


def _definition_lines(dl) -> list[str]:
    """A <dl>'s lines: each <dt> with the <dd> after it as "key: value", other items alone."""
    lines: list[str] = []
    key = None
    for item in dl.find_all(["dt", "dd"]):
        text = " ".join(_cell_lines(item))
        if item.name == "dt":
            if key:
                lines.append(key)
            key = text.rstrip(":： ")
        elif key:
            lines.append(f"{key}: {text}")
            key = None
        elif text:
            lines.append(text)
    if key:
        lines.append(key)
    return lines


def _cell_lines(cell) -> list[str]:
    """A table cell's lines (its paragraphs, a nested table's rows)."""
    lines: list[str] = []
    line: list[str] = []
    _html_block(cell, lines, line)
    _flush(lines, line)
    return lines


def _row_lines(cells: list[list[str]]) -> list[str]:
    """A table row's lines: one markdown row when each cell holds a line at most ("| 投资评级 | 买入(维持) |":
    `fintag.data.fields` reads a row of keys and values as header fields, the splitter any other row as a
    table row), or each cell's lines in turn when one holds several, as a page or a Word template laid out
    in a table does (the body in one cell, the sidebar in the next)."""
    if any(len(c) > 1 for c in cells):
        return [line for c in cells for line in c]
    texts = [c[0].replace("|", "/") for c in cells if c]
    return ["| " + " | ".join(texts) + " |"] if texts else []


def docx_to_text(data: bytes) -> str:
    """The text of a Word .docx file, one paragraph or table row a line; raises what python-docx raises
    for a file that is not a .docx (`fintag.data.reader` names the problem)."""
    from docx import Document
    from docx.enum.style import WD_STYLE_TYPE

    doc = Document(io.BytesIO(data))
    listed, headings = set(), set()  # paragraph styles that bullet or number their paragraphs ("List
    # Bullet", or inherit it), and headings, which their numbering ("1.1 ...") leaves headings
    for style in doc.styles:
        if style.type != WD_STYLE_TYPE.PARAGRAPH:
            continue
        s = style
        while s is not None and (s.element.pPr is None or s.element.pPr.numPr is None):
            s = s.base_style
        ppr = style.element.pPr
        if (style.name or "").lower().startswith(("heading", "title")) or (
            ppr is not None and ppr.find(_qn("w:outlineLvl")) is not None
        ):
            headings.add(style.style_id)
        elif s is not None:
            listed.add(style.style_id)
    styles = _Styles(frozenset(listed), frozenset(headings))
    return "\n".join(line for line in _docx_lines(doc.element.body, styles) if line)


@dataclass(frozen=True)
class _Styles:
    listed: frozenset[str]
    headings: frozenset[str]


def _qn(tag: str) -> str:
    from docx.oxml.ns import qn

    return qn(tag)


def _docx_lines(body, styles: _Styles) -> Iterator[str]:
    for el in body.iterchildren():
        if el.tag == _qn("w:p"):
            for box in _text_boxes(el):
                yield from _docx_lines(box, styles)
            text = _SPACE_RE.sub(" ", _paragraph_text(el)).strip()
            if text:
                yield ("- " if _is_list_item(el, styles) else "") + text
        elif el.tag == _qn("w:tbl"):
            for row in el.iterchildren(_qn("w:tr")):
                yield from _row_lines([list(_docx_lines(tc, styles)) for tc in row.iterchildren(_qn("w:tc"))])
        elif el.tag == _qn("w:sdt"):  # a content control (a cover page, a table of contents)
            content = el.find(_qn("w:sdtContent"))
            if content is not None:
                yield from _docx_lines(content, styles)


def _paragraph_text(p) -> str:
    """A paragraph's own text: its runs (in hyperlinks and fields too), tabs and breaks as spaces, but not
    the text of the text boxes anchored in it."""
    out: list[str] = []
    special = {_qn("w:noBreakHyphen"): "-", _qn("w:softHyphen"): ""}  # "Non‑GAAP", "2025‑2027E"
    for el in p.iter(_qn("w:t"), _qn("w:tab"), _qn("w:br"), _qn("w:cr"), *special):
        if _in_text_box(el, p):
            continue
        out.append((el.text or "") if el.tag == _qn("w:t") else special.get(el.tag, " "))
    return "".join(out)


def _in_text_box(el, p) -> bool:
    parent = el.getparent()
    while parent is not None and parent is not p:
        if parent.tag == _qn("w:txbxContent"):
            return True
        parent = parent.getparent()
    return False


def _text_boxes(p) -> list:
    """The text boxes anchored in paragraph `p`, outermost only, each once: Word writes a shape both as
    DrawingML (mc:Choice) and as VML (mc:Fallback); the fallback copy is skipped."""
    fallback = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
    boxes = []
    for box in p.iter(_qn("w:txbxContent")):
        parent, inner = box.getparent(), False
        while parent is not None and parent is not p:
            if parent.tag in (fallback, _qn("w:txbxContent")):
                inner = True
                break
            parent = parent.getparent()
        if not inner:
            boxes.append(box)
    return boxes


def _is_list_item(p, styles: _Styles) -> bool:
    """Whether paragraph `p` is a list's item: numbered itself or by its style, and not a heading."""
    ppr = p.find(_qn("w:pPr"))
    if ppr is None:
        return False
    style = ppr.find(_qn("w:pStyle"))
    style_id = style.get(_qn("w:val")) if style is not None else None
    if style_id in styles.headings or ppr.find(_qn("w:outlineLvl")) is not None:
        return False
    num = ppr.find(_qn("w:numPr"))
    if num is not None:  # numbering turned off on the paragraph: numId 0
        num_id = num.find(_qn("w:numId"))
        return num_id is None or num_id.get(_qn("w:val")) != "0"
    return style_id in styles.listed
