"""The one sentence splitter of fintag, used by dataset building, batch tagging and the server.

`segment(raw_text)` normalises a report, joins hard-wrapped lines (`fintag.data.unwrap`: PDF text layers
break every line at the column), cuts it into units (lines, sentences, bullets), and classifies
each unit once, here and nowhere else: `drop_reason` drops what is not text at all (tables of numbers,
page debris, menu lines; counted), `unit_kind` gives every kept unit one of `KINDS`. Each kept unit
carries its offsets in the original text and a stable id (a hash of its normalised text); `Segmentation.title`
says which unit is the report's title, if one is.

Dataset building, batch tagging and the server all call `segment`; summaries and the stated rating read
only the units of kind `SUMMARY_KIND`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from fintag.data.fields import (
    DATE_ONLY_RE,
    DATE_PATTERN,
    FIELD_KEY_RE,
    INDUSTRY_LEVELS,
    MARKET_DATA_KEYS,
    PIPE_RE,
    RATING_LEVELS,
    TW_HK_LEVELS,
    Span,
    banner_cells,
    date_in,
    field_key,
    field_value,
    market_datum,
    whole_fields,
)
from fintag.data.normalize import CJK_RE, Normalized, detect_lang, normalize
from fintag.data.unwrap import joiner, soft_breaks, soft_hyphen

MAX_WEIGHT = 160  # longer units (CJK characters count 1, others 0.4) are cut at a comma near their middle
MIN_CJK = 4
MIN_WORDS = 3
# A unit of mostly figures is a statement, not a table's debris, when it ends a sentence and has this many
# Chinese characters ("我们预计公司2026-2028年归母净利润分别为59.8/71.6/84.3亿元,同比增长19.2%/19.7%。", a
# results line "3Q24营收98.6亿元,季增21.4%。"; eight until the forty-eighth session: the seeds read the same).
STATEMENT_CJK = 6
# A page (of a PDF) is read on its own for hard wrapping when it has this many lines (`_logical_lines`).
PAGE_MIN_LINES = 8
BANNER_LINES = 40  # a banner of keys over their values stands among a report's first lines (a header's)

_END_PUNCT = "。!?;！？；"
_CLOSERS = "”’\"'」』)）】"
# A bullet or numbering at the start of a line: "- ", "•", "1)", "(2)", "①", "一、", "1." (not "1.5"); a
# markdown "*" bullet, never the "**" of a bold line ("**投资评级:买入(维持)**").
_BULLET_RE = re.compile(
    r"^(?:[-•·●▪■◆◇]\s*|\*(?!\*)\s*|\d{1,2}[)、]\s*|\d{1,2}\.(?!\d)\s*|\(\d{1,2}\)\s*|[①-⑳]\s*|[一二三四五六七八九十]{1,3}、\s*)"
)
# A section number of a Chinese report ("一、"): what follows is a section's title when it is short and has no
# punctuation ("一、业绩概览"), a statement otherwise.
_SECTION_NUMBER_RE = re.compile(r"^[一二三四五六七八九十]{1,3}、")
_SECTION_TITLE_RE = re.compile(r"^[^,，。!?;！？；:：%]{2,20}$")
_INLINE_BULLET_RE = re.compile(r"\s+(?:[-•]|\d{1,2}\.)\s+(?=\S)")
_ABBREV = {
    "adj",
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
    "prev",
}
_DEBRIS_RE = re.compile(
    r"(加载中|返回顶部|扫描二维码|点击(查看|进入|阅读)|APP专享|VIP课程|热门推荐|股市直播|图文直播间|视频直播间|"
    r"新浪首页|语音播报|相关新闻|登录新浪财经|海量资讯|7X24小时|^收起$|^\d+/\d+$|^Workflow$|"
    r"分享到\s*[:：]?\s*$|下载APP$|"
    # a WeChat repost's furniture: "👆点击上方蓝字“XX研究”,关注我们!", "设为星标", "分享 收藏 在看 点赞"
    r"点击上方|关注我们|设为星标|长按(?:识别)?二维码|阅读原文|喜欢此内容的人还喜欢|在看\s*点赞)",
    re.IGNORECASE,
)
# A web page's navigation, from the line's start (`match`: cheaper than more anchored branches in the
# search above): "当前位置:首页 > 研报中心", "字号:大 中 小 分享到:", "登录 注册 下载APP", "上一篇:...",
# "(文章来源:XX证券)", "(编辑:林宏达)".
_NAVIGATION_RE = re.compile(
    r"当前位置\s*[:：]|您的位置|字号\s*[:：]|登录\s*注册|(?:上一篇|下一篇)\s*[:：]|"
    r"[(（]?(?:文章来源|责任编辑|编辑)\s*[:：][^,，。]{1,20}[)）]?$"
)


# What a kept unit is. Defined once: the API schema, the README and the tests read it from here.
KINDS: dict[str, str] = {
    "sentence": "a statement of the report: prose, a bullet point, or a `key: statement` line (公司点评:...)",
    "heading": "a title: of the report, a section, a figure or a table (图1:), an item of a digest "
    "(【计算机】...), a related report (《...》2025-08-26); a source line (资料来源:), a page's label path, "
    "a table of contents' entry",
    "field": "a field of the report's header: rating, previous rating, target or current price, date "
    "(投资评级:买入(维持), 【目标价】128元, Rating: BUY), or a datum of its market data (总股本:14.63亿股)",
    "table_row": "a row of a table (cells separated by |, runs of spaces or tabs, or a run of numbers)",
    "contact": "analyst names, e-mail addresses, phone numbers, registration numbers (S0980...), addresses, "
    "a research visit's participants",
    "disclaimer": "legal notices, analyst certifications and the rating scale's definitions (评级说明...)",
}
SUMMARY_KIND = "sentence"  # the only kind that counts in summaries' shares and indices
# Kinds that can state the report's rating: a sentence, a title ("中芯国际点评:国产替代加速,维持买入评级")
# or a rating field of the header ("【投资评级】买入(维持)", "Rating: BUY"; `field_key` says which field);
# never a table row, a contact line or a disclaimer (the rating scale's definitions live there).
RATING_KINDS = (SUMMARY_KIND, "heading", "field")

# Contact lines: e-mail, SAC registration number, phone or fax, a named analyst, a street address.
_CONTACT_RE = re.compile(
    r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,4}|\bS\d{13}\b|执业(?:证书)?编号|登记编号|SAC\s*(?:No|编号)|"
    r"中央编号|\bCE\s*(?:No|Ref|Number)\b|"  # Hong Kong's SFC registration
    r"^[A-Z][a-z]+(?:\s+[A-Z][a-z]+){1,3},\s*(?:CFA|CPA|FRM|PhD|ACA)$|"  # an analyst: "Daniel Koh, CFA"
    r"(?:电话|联系电话|传真|Tel|Fax|TEL|FAX)\s*[:：]|\+86[\d\s-]{6,}|\b\d{3,4}-\d{7,8}\b|"
    r"^(?:证券)?(?:分析师|研究助理|联系人|Analysts?|Contacts?)\s*[:：]\s*\S.{0,40}$|"
    # "研究助理 顾安然": a name after it
    r"^(?:证券)?(?:分析师|研究助理|联系人)\s*"
    r"(?!介绍|简介|声明|承诺|团队|观点|一致|会议|预期|认为|指出|表示|调研|点评|纪要)[\u4e00-\u9fff]{2,3}$|"
    r"^.{0,20}(?:路|街|道)\s*\d+\s*(?:号|弄).{0,30}$",
    re.IGNORECASE,
)
# A research visit's participants and arrangements, from the line's start (`match`).
_VISIT_RE = re.compile(
    r"(?:公司)?(?:参会|出席|接待|参与)(?:人员|机构|嘉宾)\s*[:：]|(?:调研|会议)(?:方式|时间|地点|形式)\s*[:：]|"
    r"纪要整理\s*[:：]|专家(?:背景|介绍|简介)\s*[:：]|(?:主持人|主讲人)\s*[:：]|"
    r"原创\s+\S.{0,40}\d{4}年\d{1,2}月\d{1,2}日"  # a WeChat byline: "原创 作者 公众号 2025年11月03日 08:15"
)
# A short line that names a rating level ("Rating: BUY", "Maintain Outperform", "增持") is a stated rating,
# kept however short it is.
_SHORT_RATING_RE = re.compile(rf"(?<![A-Za-z]){RATING_LEVELS}(?![A-Za-z])", re.IGNORECASE)
# Disclaimer units: the rating scale's definitions ("买入:预期未来6个月...", "评级分为..."), legal notices
# and analyst certifications. A definition starts with a rating word; a rating stated in the report's
# own sentence ("维持买入评级") does not.
_DISCLAIMER_RE = re.compile(
    r"评级.{0,8}分为|评级(?:标准|说明|体系|定义)|投资评级的?(?:说明|定义|含义)|"
    rf"^(?:(?:股票|行业|公司)?(?:投资)?评[级等]\s*)?(?:(?:{RATING_LEVELS}|{INDUSTRY_LEVELS})"
    rf"(?:\s*\([A-Z]{{1,4}}\))?\s*[:：]?|(?:{TW_HK_LEVELS})\s*[:：—-])\s*"  # "加码未来成长" is a verb
    r"(?:(?:\(|（)?(?:预期|预计|指|相对|未来|股价|行业指数|公司股价|涨幅|跌幅|绝对报酬|"
    r"expected|we expect|the stock)|"
    r"[:：]\s*[-+]?\d+(?:\.\d+)?%)|"
    r"免责声明|免责条款|请务必阅读|敬请(?:参阅|阅读)[^。]{0,12}(?:声明|说明)|本报告仅供|本报告(?:版权|由|基于|所载|不构成)|版权(?:所有|归)|"
    r"不构成.{0,12}(?:投资建议|要约|邀请)|未经.{0,10}(?:许可|授权)|特此声明|证券投资咨询业务资格|"
    r"本人(?:承诺|已在|对证券研究报告|不曾因)|反映本人|Disclaimer|Analyst Certification|"
    r"^(?:股市|市场|投资)有风险[,，]?\s*(?:投资|入市)需谨慎|本订阅号|若您并非专业投资者|自负投资风险|"
    r"^(?:分析师声明|分析师承诺|法律声明|重要声明|特别声明)\s*[:：]|"
    r"not an offer to (?:buy|sell)|past performance is not|^rating definitions?\s*:|"
    r"\banalysts?\b.{0,80}\bcertif(?:y|ies) that\b",
    re.IGNORECASE,
)
# A heading that opens a disclaimer section: every unit after it is a disclaimer (or a contact) until a
# markdown heading of the same or a higher level that does not open one.
# Only a legal heading opens one, with a broker's name or a qualifier before it at most ("国信证券投资评级",
# "重要信息披露"): a report's own "投资评级" sidebar or "盈利预测与投资评级" section is not one.
_BROKER = r"[^\s:：]{0,10}?(?:证券|证券股份有限公司|研究所|研究院|研究部|研究中心)"
_LEGAL = (
    r"(?:免责声明|免责条款|法律声明|重要声明|特别声明|一般声明|分析师声明|分析师承诺|"
    r"(?:股票|行业|公司)?(?:投资)?评[级等](?:说明|标准|体系|定义)|信息披露|证券投资咨询业务的说明|"
    r"Disclaimers?|Disclosures?|Analyst Certification|Ratings? (?:System|Definitions?))"
)
_LEGAL_HEADING_RE = re.compile(
    r"分析师(?:声明|承诺)|免责(?:声明|条款)|(?:投资)?评级说明|(?:法律|重要|特别)声明"
)  # a legal section's heading run on after a body line's full stop
_DISCLAIMER_SECTION_RE = re.compile(
    rf"^(#*)\s*[【\[(（]?\s*(?:(?:{_BROKER}|重要|特别|一般|其他|法律|相关|Important|General|Other|Required)?\s*"
    rf"{_LEGAL}(?:\s*(?:及|与|和|、|&|and)\s*{_LEGAL})*|{_BROKER}投资评级)\s*[】\])）]?\s*[:：]?$",
    re.IGNORECASE,
)


_CAPTION_RE = re.compile(
    r"^[(（]?(?:(?:图|表|图表)\s*\d*\s*[:：]|(?:资料|数据)?来源\s*[:：]|(?:Figure|Table|Source)\b)"
)
_NUMERIC_CELL_RE = re.compile(r"^[-+]?[\d.,]+%?[xX倍]?$|^\d{6}(?:\.[A-Z]{2})?$")
_TOC_ENTRY_RE = re.compile(r"^【\s*\d{1,2}\s*】[^。!?;.]{0,30}$")
# A headline under a bracketed column name, without end punctuation: a weekly's or a morning note's item
# ("【计算机】金山办公(688111.SH)三季报点评:WPS AI付费转化加速", "【山证通信】周跟踪--字节跳动大幅催化算力
# 产业链,O3推理表现震撼"); a field's bracketed key ("【目标价】128元") is read first.
_BRACKET_HEADLINE_RE = re.compile(
    r"^【(?!(?:事件|点评|简评|投资要点|核心观点|主要观点|观点|要点|结论|摘要|盈利预测|投资建议|风险提示|估值|"
    r"业绩点评|事项)】)[^【】]{1,12}】[^。!?;！？；]{2,80}$"
)  # "【事件】公司发布三季报,..." and "【盈利预测】...维持买入评级" are statements
# A table of contents' entry: a title, a leader of dots and maybe its page ("行业空间:国产AI芯片进入放量期
# ............ 3"; NFKC makes "……" dots).
_TOC_LEADER_RE = re.compile(r"(?:\.{4,}|·{4,}|-{4,}|_{4,})\s*\d{0,3}$")
# A line naming another report, with its date: a related-research list ("《中际旭创(300308.SZ):800G龙头地位
# 稳固》2025-08-26") is titles, not the report's statements.
_RELATED_REPORT_RE = re.compile(
    r"^《[^《》]{4,80}》\s*(?:[-—–]{1,2}|[,，:])?\s*[(（]?(?:\d{4}(?:[-/.]\d{1,2}){1,2}|\d{4}年\d{1,2}月(?:\d{1,2}日)?)[)）]?$"
)
_COLUMN_GAP_RE = re.compile(r" {2,}|\t+")
_COLUMN_MIN_CELLS = 4
_COLUMN_MAX_WEIGHT = 12
# Words separated by spaces (\s+, never \s*: an optional separator would let one long word split up
# in exponentially many ways, and a hostile bullet line take forever).
_TITLE_CASE_RE = re.compile(r"^[A-Z][\w'-]*(?:\s+(?:[A-Z][\w'-]*|&|and|of|the|for|in)){0,5}$")
_KEY_VALUE_RE = re.compile(r"^[^:：]{0,12}[\u4e00-\u9fff][^:：\d]{0,12}[:：]\s*\S")  # not "08:18"


@dataclass(frozen=True)
class Sentence:
    """A unit of a report: `text` is normalised, `original` as written; `start`/`end` index the original."""

    id: str
    text: str
    original: str
    start: int
    end: int
    kind: str  # one of KINDS
    lang: str


@dataclass(frozen=True)
class Title:
    index: int  # the first unit of the title's line, in `Segmentation.sentences`
    units: int  # how many units the line holds ("...gain share;" and "maintain Outperform" are two)
    text: str  # the line as written (a wrapped one joined), its markdown ("# ", "**") left out


@dataclass
class Segmentation:
    sentences: list[Sentence]
    dropped: Counter[str] = field(default_factory=Counter)
    title: Title | None = None  # the report's title, if it has one (`TITLE_SEARCH`)


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
            # Closing quotes and brackets stay with the sentence, and so do combining marks: a mark belongs
            # to the character before it (one grapheme, one source offset), so no cut may fall before one.
            while j < n and (line[j] in _CLOSERS or line[j] in _END_PUNCT or unicodedata.combining(line[j])):
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
        if (text[k] in ",，、" or (text[k] == " " and text[k - 1] == ","))
        and not unicodedata.combining(text[k + 1])
    ]
    if not cuts:
        return [(start, end)]
    cut = min(cuts, key=lambda k: abs(k - middle))
    return _split_long(start, cut, text) + _split_long(cut, end, text)


def _line_units(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, layout, text) of each non-empty line, uncut: one unit a line (`segment(by_line=True)`)."""
    spans: list[tuple[int, int, str, str]] = []
    pos = 0
    for line in text.split("\n"):
        if line.strip():
            lead = len(line) - len(line.lstrip())
            spans.append((pos + lead, pos + len(line.rstrip()), "sentence", line.strip()))
        pos += len(line) + 1
    return spans


def _logical_lines(
    text: str, front_end: int = 0, pages: Sequence[int] = ()
) -> list[tuple[str, int | list[int]]]:
    """The lines of `text` with hard-wrapped ones joined (`fintag.data.unwrap`), each with where its
    characters are in `text`: the offset of its first character, or one offset per character if joined (a
    space that replaced a line break points at the break). The lines before `front_end` (a YAML front
    matter's) are never joined and do not count in the widths. `pages`: the indices of the lines that start
    a page (a PDF's); the widths are read over the whole text and over each page, as a first page's column
    beside a sidebar is narrower than the later pages' (a line joins where either says it is wrapped)."""
    physical = text.split("\n")
    starts = [0]
    for line in physical[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    skip = text.count("\n", 0, front_end)
    joins = {i + skip for i in wrapped_breaks(physical[skip:])}
    bounds = [skip, *(p for p in pages if p > skip), len(physical)]
    for a, b in itertools.pairwise(bounds):  # each page, and the next page's first line it may run into
        if len(bounds) > 2 and b - a >= PAGE_MIN_LINES:  # a few lines (a list of headlines) tell nothing
            after = physical[b] if b < len(physical) else None
            joins |= {i + a for i in wrapped_breaks(physical[a:b], after)}
    # A title in 《》 cut at a narrow column (a sidebar's related research) runs on to where it closes, and
    # to its date on a line of its own.
    entry = False  # whether line i belongs to a related report's entry ("《..." and the lines it runs on to)
    for i in range(skip, len(physical) - 1):
        entry = _is_entry(physical[i]) or (entry and i - 1 in joins)
        if entry and _opens_title(physical[i], physical[i + 1]):
            joins.add(i)
    # A sidebar's cells one a line, a field's key and then its value ("目标价格:" / "510.00元").
    joins |= {i for i in range(skip, len(physical) - 1) if _is_bare_key(physical[i], physical[i + 1])}
    # A line cut inside its quotes or brackets, closed by a short next line (a title at a narrow column:
    # "国产算力芯片行业深度:从“能用”到“好" / "用”,生态拐点渐近").
    joins |= {
        i
        for i in range(skip, len(physical) - 1)
        if can_continue(physical[i])
        and _closes_next(physical[i], physical[i + 1])
        and not opens_unit(physical[i + 1])  # a bullet, heading, field, caption or row of its own
    }
    out: list[tuple[str, int | list[int]]] = []
    i = 0
    while i < len(physical):
        line, where = physical[i], starts[i]
        cells = (
            banner_cells(line, physical[i + 1])
            if skip <= i < min(skip + BANNER_LINES, len(physical) - 1)
            else None
        )
        if cells and i + 2 < len(physical) and banner_cells(line, physical[i + 2]):
            cells = None  # a table's header over rows of values (a rating history), not a banner
        if cells:  # a banner of keys over their values: one line of fields, "key:value" each
            out.append(_banner_line(cells, line, physical[i + 1], starts[i], starts[i + 1]))
            i += 2
            continue
        if i in joins:
            pieces, offsets = [line], list(range(starts[i], starts[i] + len(line)))
            while i in joins:
                nxt = physical[i + 1]
                sep = joiner(pieces[-1], nxt)
                if soft_hyphen(pieces[-1], nxt):  # "track-" / "ing": "tracking"
                    pieces[-1], sep = pieces[-1][:-1], ""
                    offsets.pop()
                if sep:
                    pieces.append(sep)
                    offsets.append(starts[i + 1] - 1)
                pieces.append(nxt)
                offsets += range(starts[i + 1], starts[i + 1] + len(nxt))
                i += 1
            line, where = "".join(pieces), offsets
        out.append((line, where))
        i += 1
    return out


def _banner_line(
    cells: list[tuple[Span, Span]], keys: str, values: str, keys_at: int, values_at: int
) -> tuple[str, list[int]]:
    """A banner's line of keys and the line of their values below as one line of fields ("投资评级:买入(上调)
    上次评级:增持 目标价:156.00元 ..."), with where each character is in the text: a key's and a value's
    where written, the colon after a key at the key's last character, the space before a key at its first."""
    pieces: list[str] = []
    offsets: list[int] = []
    for (ka, kb), (va, vb) in cells:
        if pieces:
            pieces.append(" ")
            offsets.append(keys_at + ka)
        pieces += [keys[ka:kb], ":", values[va:vb]]
        offsets += [
            *range(keys_at + ka, keys_at + kb),
            keys_at + kb - 1,
            *range(values_at + va, values_at + vb),
        ]
    return "".join(pieces), offsets


def _is_entry(line: str) -> bool:
    """A related report's entry starts here: "《...", "1.《..."."""
    return line.lstrip("0123456789.、)） ").startswith("《")


def _opens_title(line: str, nxt: str) -> bool:
    """Whether a line of a related report's entry leaves a 《 open that `nxt` closes ("《中际旭创:800G龙头
    地位稳" / "固,1.6T蓄势待发》2025-08-26"), or closes it before `nxt`, a date alone ("...》" /
    "2025-07-30")."""
    if line.rfind("《") < line.rfind("》") or "《" not in line:
        return line.endswith("》") and DATE_ONLY_RE.match(nxt.strip()) is not None
    close = nxt.find("》")
    return close >= 0 and "《" not in nxt[:close]


def _is_bare_key(line: str, nxt: str) -> bool:
    """Whether `line` is only a header field's key and colon, and `nxt` its value ("投资评级:" /
    "增持(首次)")."""
    line = line.strip()
    return (
        line.endswith((":", "："))
        and len(line) <= 16
        and FIELD_KEY_RE.match(line.lstrip("*_【[ ")) is not None
        and field_value(line + nxt.strip()) is not None
    )


def ends_sentence(line: str) -> bool:
    """Whether a line ends with the end of a sentence (closing quotes and brackets aside); a figure's decimal
    point after Chinese ("同比增长3." where the column cut "3.5%") ends none."""
    core = line.rstrip().rstrip(_CLOSERS)
    if core.endswith(".") and core[-2:-1].isdigit():
        return not CJK_RE.match(core.rstrip("0123456789.,")[-1:] or "a")
    return not core or core[-1] in _END_PUNCT + ".…"


@functools.lru_cache(maxsize=8192)  # a line is asked about once per pass: over the text and over its page
def can_continue(line: str) -> bool:
    """Whether a line may run on into the next: not when it ends a sentence, is a table's row, a header's
    fields ("投资评级:谨慎推荐(首次) 目标价:78.00元") or an analyst's contact line."""
    return (
        not ends_sentence(line)
        and not _is_table_row(line)
        and not whole_fields(line.strip())
        and _CONTACT_RE.search(line) is None
    )


@functools.lru_cache(maxsize=8192)
def opens_unit(line: str) -> bool:
    """A line that starts a unit of its own: a bullet or number, a markdown heading, a caption or source, a
    table row."""
    return (
        line.startswith(("#", "**"))  # a markdown heading or bold line
        or field_key(line.strip()) is not None
        or _CONTACT_RE.match(line) is not None  # an analyst's line ("分析师:沈嘉言 执业证书编号:S0190...")
        or _BULLET_RE.match(line) is not None
        or _CAPTION_RE.match(line) is not None
        or _is_table_row(line)
    )


def wrapped_breaks(lines: Sequence[str], after: str | None = None) -> set[int]:
    """Indices i of the normalised `lines` whose break after `lines[i]` is hard wrapping, by this
    splitter's own idea of where a unit ends and starts (`fintag.data.unwrap`); `after`: the line after
    them (the next page's first), which the last may run into."""
    plate, section = [], False
    for i, line in enumerate(lines):  # a disclaimer's lines, and the lines of a legal section at the end
        if section and line.startswith("#") and not _DISCLAIMER_SECTION_RE.match(line.strip()):
            section = False  # a markdown heading of the report's own ends it
        elif not section and 2 * i >= len(lines):  # legal sections close a report
            tail = line[line.rfind("。") + 1 :].strip()  # "...上调至“买入”。分析师声明": a heading run on
            section = _DISCLAIMER_SECTION_RE.match(line.strip()) is not None or (
                tail != line.strip() and _LEGAL_HEADING_RE.fullmatch(tail) is not None
            )
        plate.append(section or _DISCLAIMER_RE.search(line) is not None)
    after_plate = after is not None and _DISCLAIMER_RE.search(after) is not None
    return soft_breaks(lines, can_continue, opens_unit, plate, after, after_plate)


def _units(text: str, front_end: int = 0, pages: Sequence[int] = ()) -> list[tuple[int, int, str, str]]:
    """(start, end, layout, text) of the units of the normalised text, before filtering; layout is
    sentence, bullet, numbered ("一、") or heading (the shape of the line, which `unit_kind` turns into a
    kind). A unit of hard-wrapped lines spans the breaks, and its text has them removed (or a space between
    words)."""
    spans: list[tuple[int, int, str, str]] = []
    for line, where in _logical_lines(text, front_end, pages):
        m = _BULLET_RE.match(line)
        offset = m.end() if m else 0
        kind = ("numbered" if _SECTION_NUMBER_RE.match(line) else "bullet") if m else "sentence"
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
                        first, last_char = a + lead, a + trail - 1
                        if isinstance(where, int):
                            start, end = where + first, where + last_char + 1
                        else:
                            start, end = where[first], where[last_char] + 1
                        spans.append((start, end, u_kind, line[first : last_char + 1]))
                        if kind == "numbered":  # only the line's first unit can be the section's title
                            kind = "bullet"
                s = p_start + e
    return spans


def _is_heading(unit: str) -> bool:
    return unit.endswith((":", "：")) or (
        len(unit) <= 30 and unit[-1] not in _END_PUNCT + "." and " - " not in unit
    )


def drop_reason(unit: str) -> str | None:
    """Why `unit` is not a sentence ("debris", "numeric", "too_short"), or None to keep it (a header
    field or datum of market data is kept whatever its digits: "目标价:118.00元", "2025年10月22日")."""
    if _DEBRIS_RE.search(unit) or _NAVIGATION_RE.match(unit):
        return "debris"
    cjk = len(CJK_RE.findall(unit))
    words = re.findall(r"[A-Za-z]{2,}", unit)
    letters = cjk + sum(len(w) for w in words)
    visible = sum(1 for ch in unit if not ch.isspace())
    reason = None
    if visible and letters / visible < 0.4 and not (cjk >= STATEMENT_CJK and unit[-1] in _END_PUNCT):
        reason = "numeric"
    elif cjk < MIN_CJK and len(words) < MIN_WORDS and not _SHORT_RATING_RE.search(unit):
        reason = "too_short"
    # Kept whatever their digits: "目标价:118.00元", "总股本:14.63亿股", "《...(300308):800G...》2025-08-26",
    # "会议时间:2026年10月31日 20:00".
    kept = (
        field_value(unit) is not None
        or market_datum(unit) is not None
        or _RELATED_REPORT_RE.match(unit)
        or _VISIT_RE.match(unit)
    )
    return None if reason and kept else reason


def _is_table_row(unit: str) -> bool:
    if unit.count("|") >= 2:
        return True
    cells = unit.split(" ")
    numeric = sum(_NUMERIC_CELL_RE.match(c) is not None for c in cells)
    return len(cells) >= 4 and numeric * 2 >= len(cells) and unit[-1] not in _END_PUNCT + "."


def _is_column_row(original: str) -> bool:
    """A row of short cells set apart by runs of spaces or tabs, as written (a table's header taken from a
    PDF: "代码      公司      股价（元）   2025E EPS   评级"; the normaliser closes the gaps between Chinese
    cells, so only the original shows the columns)."""
    if "  " not in original and "\t" not in original:
        return False
    cells = _COLUMN_GAP_RE.split(original.strip())
    return (
        len(cells) >= _COLUMN_MIN_CELLS
        and all(len(c) > 1 and _weight(c) <= _COLUMN_MAX_WEIGHT for c in cells)  # not "投  资  要  点"
        and 2 * sum(_looks_like_a_cell(c) for c in cells) >= len(cells)
        and not ends_sentence(original)
    )


def _looks_like_a_cell(text: str) -> bool:
    """A table's cell: Chinese, a figure, or a capitalised label ("Scenario", "Key assumptions"); words of
    an English sentence set apart by pdftotext ("We  expect  revenue  growth") mostly are not."""
    return bool(CJK_RE.search(text)) or text[0].isupper() or any(ch.isdigit() for ch in text)


def _heading_level(unit: str) -> int:
    return len(unit) - len(unit.lstrip("#"))


@dataclass
class _Section:
    """Where `unit_kind` is in the report: inside a disclaimer section (opened at a markdown level) or not."""

    disclaimer_level: int | None = None


def reads_as_disclaimer(line: str) -> bool:
    """Whether a line is a disclaimer's: a legal notice, a rating scale's definition, a page's banner
    ("请务必阅读正文之后的免责声明")."""
    return _DISCLAIMER_RE.search(line) is not None


def names_another_document(line: str) -> bool:
    """Whether a line names another report, a figure, a table or a source ("《...》2025-08-26", "图1:...",
    "资料来源:..."), whose dates are not the report's."""
    return bool(_RELATED_REPORT_RE.match(line) or _CAPTION_RE.match(line))


def unit_kind(unit: str, layout: str, section: _Section, original: str = "") -> str:
    """The kind (one of `KINDS`) of a kept unit, given its layout, the section it is in (updated) and its
    text as written (where a table's columns still show)."""
    level = _heading_level(unit)
    # A bullet point states something, unless it is a table-of-contents entry ("【 01 】 港股互联网所处阶段")
    # or an English title ("Automotive & Autonomous Driving"); a markdown title long enough to state a
    # view ("# 尽管...估值仍处于历史分位较低水平") is a sentence too.
    shaped_like_heading = (
        layout == "heading"
        or _TOC_ENTRY_RE.match(unit) is not None
        or (layout in ("bullet", "numbered") and _TITLE_CASE_RE.match(unit) is not None)
        or (layout == "numbered" and _SECTION_TITLE_RE.match(unit) is not None)
        or (level > 0 and _is_heading(unit.lstrip("# ") or unit))
    )
    opens = shaped_like_heading or level > 0
    if opens and _DISCLAIMER_SECTION_RE.match(unit) and not _KEY_VALUE_RE.match(unit.lstrip("# ")):
        section.disclaimer_level = level
        return "disclaimer"
    if section.disclaimer_level is not None and 0 < level <= max(section.disclaimer_level, 0):
        section.disclaimer_level = None  # a markdown heading of the same level or above ends the section
    if _CONTACT_RE.search(unit) or _VISIT_RE.match(unit):
        return "contact"
    if section.disclaimer_level is not None or _DISCLAIMER_RE.search(unit):
        return "disclaimer"
    # Before the table row: "Date: 15 March 2024" has the shape of a row of numbers too.
    if field_key(unit) is not None or market_datum(unit) is not None:
        return "field"
    if _is_table_row(unit) or _is_column_row(original):
        return "table_row"
    if (
        _CAPTION_RE.match(unit)
        or _RELATED_REPORT_RE.match(unit)
        or _BROKER_RE.match(unit)
        or _is_label_path(unit)
        or _BRACKET_HEADLINE_RE.match(unit)
        or _TOC_LEADER_RE.search(unit)
    ):
        return "heading"
    if shaped_like_heading and not (_KEY_VALUE_RE.match(unit) and unit[-1] not in ":："):
        return "heading"
    return "sentence"


# A markdown file's YAML front matter: a `---` line first, `key: value` lines (with YAML's lists and block
# scalars' lines), a closing `---` or `...` line. Its title is the report's title, its date, rating and
# target price are header fields (`fintag.data.fields`: "publish_date: 2025-11-12"), the rest (tags,
# authors' ids, file paths) is metadata, dropped as "front_matter".
_FRONT_MATTER_KEY_RE = re.compile(r"^[A-Za-z_][\w-]{0,40}\s*:(?P<value>(?:\s.*)?)$")
_FRONT_MATTER_ITEM_RE = re.compile(r"^-\s.*$|^$")
_FRONT_MATTER_MAX_LINES = 60
_FRONT_MATTER_TITLE_RE = re.compile(r"^title\s*:\s*(?P<q>[\"']?)(?P<value>.+?)(?P=q)\s*$", re.IGNORECASE)


def _front_matter_end(text: str) -> int:
    """Where the normalised `text`'s YAML front matter ends (after its closing line), 0 when it has none."""
    if not text.startswith("---\n"):
        return 0
    at, keys, block = 4, 0, False
    for _ in range(_FRONT_MATTER_MAX_LINES):
        end = _line_end(text, at)
        line = text[at:end]
        if line.strip() in ("---", "...") and keys:
            return min(end + 1, len(text))
        key = _FRONT_MATTER_KEY_RE.match(line)
        if end >= len(text) or not (key or block or _FRONT_MATTER_ITEM_RE.match(line)):
            return 0  # a markdown heading or prose between two rules is no front matter
        if key:
            keys += 1
            # A block's lines follow "key: |", "key: >" or "key:" (the normaliser took their indent).
            block = key.group("value").strip() in ("", "|", ">", "|-", ">-", "|+", ">+")
        at = end + 1
    return 0


# The report's title: the line that starts one of its first `TITLE_SEARCH` kept units (among the first
# `_TITLE_LOOK`, those passed over aside), a title or a sentence, taken whole ("Cambricon...gain share;
# maintain Outperform" is two units, a title wrapped at the column one), when it has no end punctuation and
# weighs `_TITLE_WEIGHT`. Passed over: a short section heading ("投资要点", "AI智能总结"), a broker's page
# furniture (`_NOT_A_TITLE_RE`, `_FURNITURE_RE`: "证券研究报告", "公司点评", "核心观点与投资建议") and a
# line of the company and its code only (`_CODE_LINE_RE`). A sentence before it that cannot be the title
# means the text has begun: no title.
TITLE_SEARCH = 3
_TITLE_LOOK = 40  # units looked at in all, those passed over included (a PDF's sidebar may come first)
_TITLE_WEIGHT = (6.0, 80.0)
_TITLE_MARKUP = "#*_ \t"
# A line naming the broker's report series anywhere ("电子 | 证券研究报告 — 公司点评", "Asia Pacific Equity
# Research"; `_NOT_A_TITLE_RE` need not list these), or only the company and its code ("中芯国际
# (688981.SH)", the title follows it), is passed over.
_FURNITURE_RE = re.compile(r"证券研究报告|equity research", re.IGNORECASE)
# A path of short labels ("通信 | 光模块") or a broker's name ("Harbourview Capital Markets") is passed over
# too; a short line that only names the report's kind or series ("行业深度报告", "A股策略专题报告", "港股研究|
# 公司报告", "海光信息(688041)深度报告", "电子行业深度报告:半导体材料系列之三") is the title only when no
# other line is.
_REPORT_KIND_RE = re.compile(
    r"(?:报告|研究|点评|周报|月报|日报|晨报|专题|简报|快报|快评|纪要|策略|系列之?[一二三四五六七八九十\d]{1,3})$"
)
_REPORT_KIND_WEIGHT = 20.0
# A digest of several companies' and industries' news (a morning note): a short line naming one ("晨会纪要",
# "每日晨报", "Morning Call") is the title, the items after it are not, and the report states no rating of
# its own (`names_a_digest`; the summary lists each item's).
# The name is the line, or a label of it, with a broker's name before it and a date after it at most: a
# company's "晨会点评:中际旭创Q3业绩超预期" is a report on one company.
_DIGEST_RE = re.compile(
    r"[^\s:：,，。!?]{0,10}?(?:晨会(?:纪要|集萃|聚焦|精选|速递|报告)?|晨报|早报|早参|每日早参|早间资讯|"
    r"Morning\s+(?:Notes?|Call|Brief(?:ing)?|Meeting))"
    rf"(?:[\s:：()（）—–\-]*(?:第\s*\d{{1,5}}\s*期|{DATE_PATTERN}|\d{{8}}|(?:星期|周)[一二三四五六日天]))*[\s()（）]*",
    re.IGNORECASE,
)
_DIGEST_WORDS = ("晨会", "晨报", "早报", "早参", "早间", "orning")  # a quick test before `_DIGEST_RE`
_KIND_WORDS = "点评|深度|报告|周报|月报|专题|简评|快评"  # what a broker calls a report
# "海川证券 · 公司研究 · 家用电器", a breadcrumb "首页 > 研报中心 > 个股研报", "Research › Equities"
_LABEL_SEPARATORS_RE = re.compile(r"\s*[|｜/>›»]\s*|\s+·\s+")
_KIND_LABELS_RE = re.compile(
    rf"^(?:公司|行业|宏观|策略|个股)(?:{_KIND_WORDS}|研究)(?:报告)?[^:：,，。!?;；]{{0,10}}$"
)
_KIND_LABELS_WEIGHT = 12.0
_LABEL_WEIGHT = 8.0
_BROKER_RE = re.compile(
    r"^(?:[A-Z][\w&'.-]*\s+){0,4}(?:Securities|Capital Markets|Research|Bank|Group|Limited|Ltd\.?|Inc\.?|"
    r"LLC|Partners|International)$|"
    r"^[\u4e00-\u9fff]{2,10}(?:证券(?:股份有限公司|有限责任公司|研究所|研究院)?|研究所|研究院)$"
)  # "Harbourview Capital Markets", "中信建投证券"
# An English label naming the report's kind ("China Internet Infrastructure | Company Update"): a path
# with one is page furniture, however long its other labels.
_REPORT_KIND_LABEL_RE = re.compile(
    r"(?:Company|Sector|Industry|Results?|Earnings|Flash|Quick|Strategy)\s+(?:Update|Report|Note|Review|Comment)|"
    r"Initiating\s+Coverage|Initiation|First\s+Take",
    re.IGNORECASE,
)
_COMPANY_CODE = r"[^:：,，。]{2,30}?\s*[(（]\s*[0-9A-Z]{1,6}(?:[.\s][A-Z]{1,2})?\s*[)）]"
# A line of the company and its code, the code in brackets or after a space ("中际旭创 300308.SZ",
# "腾讯控股 0700.HK", "中芯国际 688981").
_CODE_LINE_RE = re.compile(
    rf"^(?:{_COMPANY_CODE}|[^\s:：,，。]{{2,20}}\s+(?:\d{{6}}(?:\.[A-Z]{{2}})?|\d{{4,5}}\.HK|[A-Z]{{1,5}}\.[A-Z]{{1,2}}))$"
)
_CODE_PREFIX_RE = re.compile(rf"^{_COMPANY_CODE}\s*[:：]\s*(?=\S)")
_CODE_START_RE = re.compile(rf"^{_COMPANY_CODE}")
# A sidebar's market data and chart labels ("总股本 7.09亿股", "52周区间 61.20-195.80元", "主要股东:联想控股
# (31.5%)", "52-week range: US$13.05-28.90", "股价相对走势", "Share price performance"): never the title.
_FIGURE = r"(?:US\$|HK\$|NT\$|RMB|¥|\$)?\s*[-+]?\d[\d.,]*\s*(?:%|x|倍|bn|mn|m|[\u4e00-\u9fff]{1,3})?"
_SIDEBAR_DATUM_RE = re.compile(
    rf"^(?:{MARKET_DATA_KEYS})[^:：。!?,，\d]{{0,10}}(?:\s*\([^()]{{1,8}}\))?\s*[:：]?\s*"
    rf"{_FIGURE}(?:\s*[-~–/至]\s*{_FIGURE})?(?:\s*\([^()]{{1,12}}\))?$|"
    r"^(?:主要股东|大股东|第一大股东|Major\s+shareholders?)\s*[:：]?\s*[^。!?:：,，\s]{2,10}(?:\([^()]{1,10}\))?$|"
    r"^(?:(?:股价|行业指数|指数|市场)?(?:相对)?(?:走势|表现)(?:图|比较|对比)?|"
    r"(?:Share|Stock|Relative)?\s*price\s+performance|Price\s+chart)$|"
    r"^(?:(?:[A-Z][a-z]{2}[-/ ]?\d{2}|\d{4}[-/]\d{1,2}|\d{4}年\d{1,2}月)\s*){2,}$",  # a chart's axis
    re.IGNORECASE,
)
_NOT_A_TITLE_RE = re.compile(
    r"^(?:[\s|｜/·•\-—_]*(?:研究报告|证券研究|(?:公司|行业|宏观|策略|固收|债券|基金)研究|金融工程|"
    rf"(?:公司|行业)(?:{_KIND_WORDS})|点评报告|深度报告|首次覆盖|跟踪报告|"
    r"核心观点|投资要点|投资建议|主要观点|报告摘要|摘要|要点|与|和|及|"
    r"research report|(?:company|industry|sector) (?:report|research|update|note)))+"
    r"[\s|｜/·•\-—_]*$",
    re.IGNORECASE,
)


def _line_end(text: str, at: int) -> int:
    end = text.find("\n", at)
    return len(text) if end < 0 else end


def _joined(lines: str) -> str:
    """Physical lines joined as wrapped text is (`fintag.data.unwrap.joiner`)."""
    out = ""
    for line in (x.strip() for x in lines.split("\n")):
        if line:
            out += (joiner(out, line) if out else "") + line
    return out


def names_a_digest(line: str) -> bool:
    """Whether a short header line names a digest of several companies' news ("晨会纪要", "证券研究报告 |
    晨会纪要", "Morning Call"), not a report on one."""
    if not any(word in line for word in _DIGEST_WORDS):
        return False
    return any(_DIGEST_RE.fullmatch(label) for label in PIPE_RE.split(line.strip()))


def without_company_code(text: str) -> str:
    """`text` without a leading "company (code):" ("中微公司(688012.SH):刻蚀设备订单饱满" -> "刻蚀设备订单
    饱满"), as a PDF's running header puts the company before the title on every page."""
    return _CODE_PREFIX_RE.sub("", text, count=1)


_PAIRS = (("“", "”"), ("(", ")"), ("《", "》"), ("「", "」"))


def _closes_next(line: str, nxt: str) -> bool:
    """Whether `line` leaves a quote or bracket open that the short line `nxt` closes."""
    return len(nxt) <= 40 and any(
        line.count(a) > line.count(b) and b in nxt and nxt.count(a) < nxt.count(b) for a, b in _PAIRS
    )


def _is_label_path(unit: str) -> bool:
    """A line of short labels set apart by "|" ("Equity Research | 15 September 2025", "行业研究 | 2025年9月
    15日"): a page header, not a statement."""
    if "|" not in unit and "｜" not in unit:
        return False
    labels = PIPE_RE.split(unit)
    return (
        len(labels) > 1 and not ends_sentence(unit) and all(0 < _weight(x) <= _LABEL_WEIGHT for x in labels)
    )


def _passed_over(core: str, kind: str) -> bool:
    """Whether a header line is not the title but may stand before it (see `TITLE_SEARCH`); a line that
    only names the report's kind (`_REPORT_KIND_RE`) is not one, but `_find_title` falls back on it."""
    labels = _LABEL_SEPARATORS_RE.split(core)
    return bool(
        kind not in ("sentence", "heading")  # a header field, a contact line
        or _NOT_A_TITLE_RE.match(core)
        or _SIDEBAR_DATUM_RE.match(core)
        or _FURNITURE_RE.search(core)
        or _CODE_LINE_RE.match(core)
        or _CAPTION_RE.match(core)  # a sidebar chart's "资料来源:Wind,..."
        or _is_spaced_labels(core)
        or _BROKER_RE.match(core)
        or (len(labels) > 1 and all(_weight(x) <= _LABEL_WEIGHT for x in labels))
        or (len(labels) > 1 and any(_REPORT_KIND_LABEL_RE.fullmatch(x) for x in labels))
        or (len(labels) > 1 and date_in(core) is not None)  # "China Autos & Mobility | 21 November 2025"
        or _is_dated_label(core)  # a page header's "公司点评 2025年8月25日"
        or (_CODE_START_RE.match(core) is not None and date_in(core) is not None)  # "X(300308) 8月25日"
        or _RELATED_REPORT_RE.match(core) is not None  # a sidebar's related research
        or (kind == "heading" and _weight(core) < _TITLE_WEIGHT[0])
    )


def _is_spaced_labels(core: str) -> bool:
    """Short labels after the report's kind, apart by spaces ("公司点评 消费电子 A股", which the normaliser
    runs into "公司点评消费电子 A股"): a page's tags, not the title."""
    return _KIND_LABELS_RE.match(core) is not None and _weight(core) <= _KIND_LABELS_WEIGHT


def _is_dated_label(core: str) -> bool:
    """A short label and a date, apart by a space or a colon ("公司点评 2025年8月25日", "策略周报
    2025年11月23日", "中金公司研究部:2026年11月27日")."""
    date = date_in(core)
    rest = core.replace(date, " ").strip() if date else ""
    return (
        bool(rest)
        and (" " in core or rest.endswith((":", "：")))
        and _weight(rest.rstrip(":：")) <= _LABEL_WEIGHT
        and not ends_sentence(rest)
    )


def _reads_as_title(core: str, kind: str) -> bool:
    return (
        _TITLE_WEIGHT[0] <= _weight(core) <= _TITLE_WEIGHT[1]
        and not ends_sentence(core)
        and "。" not in core  # a title may exclaim or ask ("业绩超预期!维持买入评级"), not run on
        and not core.endswith((":", "："))
    )


def _find_title(text: str, units: list[tuple[int, int, str]]) -> tuple[int, int, int, int] | None:
    """(first unit, units on the line, start, end in the normalised `text`) of the title among `units`
    ((start, end, kind) of the kept units), or None; a line that only names the report's kind ("海光信息
    (688041)深度报告") when no other line is the title."""
    considered = 0
    fallback = None
    for k, (start, _, kind) in enumerate(units[:_TITLE_LOOK]):
        line_start = text.rfind("\n", 0, start) + 1
        last, end = k, _line_end(text, start)
        while True:  # the units on the line, and the lines a wrapped unit runs on to
            end = max(end, _line_end(text, units[last][1] - 1))
            if last + 1 < len(units) and units[last + 1][0] < end:
                last += 1
            elif _closes_next(text[line_start:end], text[end + 1 : _line_end(text, end + 1)]):
                end = _line_end(text, end + 1)  # a title cut inside its quotes: "从“能用”到“好" / "用”,..."
            else:
                break
        line = text[line_start:end]
        core = _joined(line).strip(_TITLE_MARKUP)
        if text[line_start:start].strip(_TITLE_MARKUP):
            continue  # a unit inside a line already looked at
        lead = len(line) - len(line.lstrip(_TITLE_MARKUP))
        found = (k, last - k + 1, line_start + lead, line_start + len(line.rstrip(_TITLE_MARKUP)))
        if kind in ("heading", "sentence") and names_a_digest(core) and not _FURNITURE_RE.search(core):
            return found  # "晨会纪要": the items after it are not the title
        if _passed_over(core, kind):
            continue  # a line before the title
        if _REPORT_KIND_RE.search(core) and _weight(core) <= _REPORT_KIND_WEIGHT:
            if fallback is None and _reads_as_title(core, kind):
                fallback = found
            continue
        considered += 1
        if considered > TITLE_SEARCH:
            break
        if _reads_as_title(core, kind):
            return found
        if kind == "sentence":
            break
    return fallback


def _is_company_row(original: str) -> bool:
    """A table's row as written: three or more cells apart by runs of spaces or tabs, one of them starting
    with a company and its code ("中际旭创(300308.SZ)  买入   通信", "小马智行-W(02026.HK) 增持   汽车")."""
    if "  " not in original and "\t" not in original:
        return False
    cells = _COLUMN_GAP_RE.split(original.strip())
    company = next((m for m in map(_CODE_START_RE.match, cells) if m), None)
    return (
        company is not None
        and len(cells) + bool(company.string[company.end() :].strip()) >= 3
        and all(_weight(c) <= _COLUMN_MAX_WEIGHT for c in cells if c is not company.string)
        and not ends_sentence(original)
    )


def _company_rows(originals: list[str]) -> set[int]:
    """The units in a run of two or more rows of a table of companies (a strategy report's stock pool, an
    industry report's ratings): their ratings are the companies', not the report's."""
    rows = [_is_company_row(o) for o in originals]
    return {
        i
        for i, row in enumerate(rows)
        if row and ((i > 0 and rows[i - 1]) or (i + 1 < len(rows) and rows[i + 1]))
    }


def _page_starts(norm: Normalized) -> list[int]:
    """The indices of the normalised lines that start a page: where a form feed stood between them and the
    line before (the reader puts one between a PDF's pages)."""
    if "\f" not in norm.original:
        return []
    out, line = [], 0
    for k, ch in enumerate(norm.text):
        if ch == "\n":
            line += 1
            if (
                0 < k < len(norm.text) - 1
                and "\f" in norm.original[norm.offsets[k - 1] + 1 : norm.offsets[k + 1]]
            ):
                out.append(line)
    return out


def segment(raw_text: str, normalized: Normalized | None = None, by_line: bool = False) -> Segmentation:
    """Normalise and split a report; see the module docstring.

    `by_line=True`: every non-empty line is one unit, not cut and not dropped (text that is already one
    sentence per line); each still gets its kind."""
    norm = normalized if normalized is not None else normalize(raw_text)
    result = Segmentation(sentences=[])
    section = _Section()
    spans: list[tuple[int, int, str]] = []  # of the kept units, in the normalised text
    front_end = 0 if by_line else _front_matter_end(norm.text)
    front_title = None  # (unit index, the title's text as written)
    pages = () if by_line else _page_starts(norm)
    for start, end, layout, unit in (
        _line_units(norm.text) if by_line else _units(norm.text, front_end, pages)
    ):
        if start < front_end:
            m = _FRONT_MATTER_TITLE_RE.match(unit)
            kind = "heading" if m else "field" if field_key(unit) is not None else ""
            if not kind:
                result.dropped["front_matter"] += 1
                continue
            if m:
                start, end = start + m.start("value"), start + m.end("value")
                unit = m.group("value")
        else:
            reason = None if by_line else drop_reason(unit)
            if reason:
                result.dropped[reason] += 1
                continue
        o_start, o_end = norm.original_span(start, end)
        original = norm.original[o_start:o_end]
        if start < front_end:
            if kind == "heading" and front_title is None:
                front_title = (len(result.sentences), original.strip())
        else:
            kind = unit_kind(unit, layout, section, original)
        spans.append((start, end, kind))
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
    for i in _company_rows([s.original for s in result.sentences]):
        if result.sentences[i].kind in ("heading", "sentence"):
            result.sentences[i] = replace(result.sentences[i], kind="table_row")
            spans[i] = (spans[i][0], spans[i][1], "table_row")
    if front_title is not None:
        result.title = Title(index=front_title[0], units=1, text=front_title[1])
        return result
    found = None if by_line else _find_title(norm.text, spans)  # lines given one by one have no title
    if found:
        index, units, t_start, t_end = found
        o_start, o_end = norm.original_span(t_start, t_end)
        result.title = Title(index=index, units=units, text=_joined(norm.original[o_start:o_end]))
    return result


def split_sentences(text: str) -> list[str]:
    """The normalised sentences of `text` (convenience wrapper over `segment`)."""
    return [s.text for s in segment(text).sentences]
