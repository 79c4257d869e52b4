"""A paragraph that a figure or a page's furniture cuts in two, read whole.

A PDF-to-markdown converter (MinerU) writes a page's blocks in reading order, each a paragraph apart by blank
lines: where a figure stands in the middle of a paragraph, or a page ends inside one, the paragraph's first
half is followed by the figure (its image, caption and source line) or by the page's furniture (the footer's
"请务必阅读正文之后的免责声明", the next page's running header), and then by its second half:

    盈利能力持续提升，公司前三季度综合毛利率达到$3 9 . 6 \\%$，同比
    ![](images/d4c7....jpg)
    图 3：公司单季度毛利率及净利率（%）
    资料来源：Wind，华衡证券经济研究所整理
    $+ 5 . 2 \\mathrm { p p t }$，主要受益于800G高速率产品出货占比提升及海外客户结构优化。

`resume_cut_paragraphs` joins the halves and moves what stood between them below the joined paragraph:
- the first half is body text (a bullet's paragraph too), after the first sentence of the report ends (the
  title and the header before it are never cut), its last line stopping mid-sentence (`can_continue`: no
  field, contact or row; no heading, caption or disclaimer; at least `MIN_CUT_CHARS`, a clause in it);
- between stand at most `MAX_BETWEEN` paragraphs of captions and sources, disclaimers' banners, and short
  lines with no clause that end no sentence and open no unit of the report's (a running header:
  "公司研究·首次覆盖", "Qianfan Interactive (9799 HK) 18 November 2025"; never a heading, a field or an
  analyst's line), a caption, a source or a banner among them (`_evidence`): a short line alone may be a
  heading of the report's ("盈利预测与投资建议", a transcript's "Q");
- the second half is body text too (at least `MIN_CUT_CHARS`, a clause or a sentence's end, no unit's
  opening) that starts where no sentence starts: a figure, a converter's math, punctuation, a word in lower
  case; or with a Chinese character when the first half ends on a word no sentence, heading or name ends on
  ("...收入占比有望" / "进一步提升至65%以上...") and neither half opens with a label, a bullet or a number
  ("问:", "专家:", "1.2 "): a Chinese character can start a sentence as well as go on with one;
- at most `MAX_CHAIN` halves join one paragraph.
"""

from __future__ import annotations

import logging
import re

from fintag.data.normalize import CJK_RE, normalize_text
from fintag.data.split import (
    can_continue,
    ends_sentence,
    names_another_document,
    opens_unit,
    reads_as_disclaimer,
)
from fintag.data.unwrap import joiner

logger = logging.getLogger(__name__)

MIN_CUT_CHARS = 20  # a first half this long at least: a paragraph, not a heading or a label
MAX_BETWEEN = 6  # paragraphs between the halves at most (two figures, each with caption and source)
RUNNING_MAX_CHARS = 60  # a running header or footer's length at most
_CLAUSE_RE = re.compile(r"[，,；;、:：。]")
# How a second half starts: a figure, a converter's math, a sign, closing or clause punctuation, a word in
# lower case ("高于" / "$\mathrm { A M A T }$、...", "同比" / "$+ 5 . 2 ...", "to grow" / "22%/17% in ...").
# A Chinese character may start a new sentence as well as go on with one: joined only after a first half
# that ends on a word no sentence or heading ends on (`_MID_CLAUSE_RE`: a preposition, a particle, a verb
# that wants its object).
_GOES_ON_RE = re.compile(r"[0-9$+\-%，,、；;）)”a-z]")
# Not a name's or a noun's last character: "华为", "英伟达", "激光雷达", "碳中和", "方向" and "合约" end
# headings.
_MID_CLAUSE_RE = re.compile(
    r"(?:的|将|有望|由|至|于|在|及|与|对|从|较|达到|超过|高于|低于|同比|环比|并|且|但|而|以|把|被|使|占|则)$"
)
# A line that opens with a label: a speaker's or a section's ("问:", "专家:", "风险提示:"), a bullet or a
# number ("1.2 ", "二、"): a heading, a list's item or a question, not half of a body paragraph.
_LABEL_RE = re.compile(r"[^\s,，。:：]{1,6}[:：]|\d+(?:\.\d+)+\s")
MAX_CHAIN = (
    4  # halves joined onto one paragraph at most (a chain of cuts is hostile input: each join reads it)
)


def _paragraphs(lines: list[str]) -> list[list[str]]:
    """The runs of non-blank lines."""
    out: list[list[str]] = []
    run: list[str] = []
    for line in lines:
        if line.strip():
            run.append(line)
        elif run:
            out.append(run)
            run = []
    if run:
        out.append(run)
    return out


def _cut(line: str) -> bool:
    """Whether a paragraph's last line (normalised) is the first half of a cut one."""
    return (
        len(line) >= MIN_CUT_CHARS
        and _CLAUSE_RE.search(line) is not None
        and not line.endswith((":", "："))
        and can_continue(line)
        and not line.startswith(("#", "|"))  # a heading, a table's row (a bullet's paragraph may be cut)
        and not names_another_document(line)
        and not reads_as_disclaimer(line)
    )


def _between(line: str) -> bool:
    """Whether a line (normalised) may stand between the halves: a caption or source, a disclaimer's banner,
    a running header or footer."""
    if _evidence(line):
        return True
    if opens_unit(line):  # a heading, a field, a contact line, a bullet: the report's, never furniture
        return False
    return len(line) <= RUNNING_MAX_CHARS and not ends_sentence(line) and _CLAUSE_RE.search(line) is None


def _evidence(line: str) -> bool:
    """Whether a line (normalised) shows a figure or a page's end stands there: a caption or source, a
    disclaimer's banner (a short line alone may be the report's heading)."""
    return names_another_document(line) or reads_as_disclaimer(line)


def _labelled(line: str) -> bool:
    """Whether a line (normalised) opens with a label, a bullet or a number."""
    return _LABEL_RE.match(line) is not None or opens_unit(line)


def _goes_on(line: str, mid_clause: bool) -> bool:
    """Whether a line (raw) may be a cut paragraph's second half: body text that starts where no sentence
    starts (`_GOES_ON_RE`: a figure, a converter's math, punctuation, a word in lower case), or with a
    Chinese character after a first half cut mid-clause (`mid_clause`: "...占比有望" / "进一步提升至...")."""
    text = normalize_text(line)
    if len(text) < MIN_CUT_CHARS or not (_CLAUSE_RE.search(text) or ends_sentence(text)) or opens_unit(text):
        return False
    start = line.lstrip()
    chinese = mid_clause and CJK_RE.match(start) is not None and not _labelled(text)
    return _GOES_ON_RE.match(start) is not None or chinese


def _second_half(paragraphs: list[list[str]], k: int) -> int | None:
    """The index of the paragraph that goes on with paragraph `k`, cut after its last line, or None."""
    last = paragraphs[k][-1].rstrip()
    if last.endswith(("。", "！", "？", "!", "?")):  # most paragraphs end a sentence
        return None
    cut = normalize_text(last)
    if not _cut(cut):
        return None
    first = normalize_text(paragraphs[k][0]) if len(paragraphs[k]) > 1 else cut
    mid_clause = _MID_CLAUSE_RE.search(cut) is not None and not _labelled(first)
    evidence = False
    for m in range(k + 1, min(k + 2 + MAX_BETWEEN, len(paragraphs))):
        lines = [t for t in map(normalize_text, paragraphs[m]) if t]
        if all(_between(t) for t in lines):  # a caption, a banner, a running header
            evidence = evidence or any(_evidence(t) for t in lines)
            continue
        return m if evidence and _goes_on(paragraphs[m][0], mid_clause) else None
    return None


def resume_cut_paragraphs(text: str) -> str:
    """`text` with each paragraph a figure or page furniture cuts joined, what stood between below it.
    Text with form feeds (pages a PDF's way) is left as it is: `fintag.data.pdf_pages` reads its pages."""
    if "\f" in text:
        return text
    paragraphs = _paragraphs(text.split("\n"))
    out: list[list[str]] = []
    joins = 0
    body = False  # whether a sentence has ended yet: before that stand the title and the header, never cut
    k = 0
    while k < len(paragraphs):
        current, moved, chain = paragraphs[k], [], 0
        while body and chain < MAX_CHAIN and (m := _second_half(paragraphs, k)) is not None:
            chain += 1
            left, right = current[-1].rstrip(), paragraphs[m][0].lstrip()
            current = [*current[:-1], left + joiner(left, right) + right, *paragraphs[m][1:]]
            moved += paragraphs[k + 1 : m]
            paragraphs[k : m + 1] = [current]
            joins += 1
        out += [current, *moved]
        body = body or any("。" in line for line in current) or ends_sentence(normalize_text(current[-1]))
        k += 1
    if not joins:
        return text
    logger.debug("joined %d paragraph(s) cut by a figure or a page's furniture", joins)
    return "\n\n".join("\n".join(p) for p in out)
