"""The fields of a report's header: its rating, previous rating, target and current price, market value
and date, as broker reports write them ("投资评级:买入(维持)", "【目标价】128元", "Rating: BUY", a table's
row as a PDF gives it, "买入(维持) | 目标价:62.3元 | 2026年11月28日"), and the dates and target prices
written inside other lines. `fintag.data.split` classifies a unit as a
field with `field_key`; the summary reads the values with `field_values`.
"""

from __future__ import annotations

import re

from fintag.data.normalize import CJK_RE
from fintag.data.taxonomy import PREVIOUS_RATING_WORDS, RATING_WORDS_EN, RATING_WORDS_TW_HK, RATING_WORDS_ZH

# Rating levels as a pattern: mainland and English scales' words, industry scales' levels the words leave
# out (they name a rating only after an industry key), and Taiwan's and Hong Kong's levels.
RATING_LEVELS = f"(?:{'|'.join((*RATING_WORDS_ZH, *RATING_WORDS_EN))})"
INDUSTRY_LEVELS = "强于大市|弱于大市|领先大市|落后大市"
TW_HK_LEVELS = "|".join(RATING_WORDS_TW_HK)  # in the rating scale's definitions and a joined rating field
# A field of the header: a short `key: value` line, or `【key】value`, whose key is the company's or the
# industry's rating (评级; 評等 in Taiwan), the previous rating, the target price, the share price, the
# market value or the date. `field_value` says which and what; the keys are `FIELD_KEYS`.
# What a key may carry in brackets: a currency or unit ("目标价(人民币)"), the day of a price ("收盘价
# (2026/11/20)", "收盘价(11月26日)").
_KEY_BRACKET = (
    r"(?:\s*\((?:[^()]{1,6}|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}\s+[A-Z][a-z]{2,8}\.?\s+\d{4})\))?"
)
_FIELD_KEYS = {
    "previous_rating": PREVIOUS_RATING_WORDS,
    "industry_rating": r"行业(?:投资)?评[级等]|(?:Industry|Sector)\s+Rating",
    "rating": r"(?:(?:6|12|六|十二)个月)?(?:公司|股票)?(?:投资)?评[级等]|投资建议|"
    r"(?:(?:Investment|Stock)\s+)?Rating",
    "previous_target_price": r"(?:前次|上次|此前|之前|原)目标(?:股?价(?:格)?)|"
    r"(?:Previous|Prior)\s+(?:target\s+price|TP)",
    "target_price": r"(?:(?:6|12|六|十二)个月)?目标(?:股?价(?:格)?|估值)|合理价值|"
    r"(?:12-month\s+)?Target[_\s]+price|Price\s+target|TP",
    "price": r"(?:(?:当前|最新|昨)(?:收盘)?|收盘)(?:股)?价(?:格)?|股价|现价|市价|"
    r"(?:Current|Last|Closing|Share)\s+price",
    "market_value": r"(?:总|流通)?市值|Market\s+cap(?:italisation|italization)?",
    "date": r"(?:报告|发布)?日期|(?:(?:Report|Publish(?:ed)?|Publication|Release)[_\s]+)?Date",
}
FIELD_KEYS = tuple(_FIELD_KEYS)
_FIELD_ALTS = "|".join(_FIELD_KEYS.values())  # any field's key, as a pattern
RATING_FIELD_KEYS = ("industry_rating", "rating", "previous_rating")  # the others' values need a number
_FIELD_RE = re.compile(
    r"^[*_]*[【\[]?\s*(?:" + "|".join(f"(?P<{k}>{v})" for k, v in _FIELD_KEYS.items()) + r")"
    rf"{_KEY_BRACKET}\s*"  # a currency or date after the key: "目标价(人民币):96.00元", "收盘价(2026/11/20)"
    r"(?:[】\]]\s*[:：]?|[:：]|\s)\s*(?P<value>[^\s。!?;！？；][^。!?;！？；]{0,29})$",
    re.IGNORECASE,
)
# Where a field's key stands, to cut a line of several fields: before its colon, or right before its value
# (a figure, a currency or a rating level: a table's row as a PDF gives it, "投资评级        买入（维持）
# 目标价        286.00元", which the normaliser runs into "投资评级买入(维持) 目标价 286.00元"); not inside a
# word ("Update:"), and not after 前次/上次/原 ("(前次目标价:75元)" belongs to the value before it).
FIELD_KEY_RE = re.compile(
    r"(?<![A-Za-z])(?<!前次)(?<!上次)(?<!原)(?:" + _FIELD_ALTS + rf"){_KEY_BRACKET}"
    rf"(?:\s*[】\]]?\s*[:：]|\s*[】\]]|"  # "【投资评级】审慎推荐(维持)【目标价】148.00元"
    rf"(?=\s?(?:[\d$¥]|(?:US|HK|NT|S)\$|RMB|HKD|USD|{RATING_LEVELS}|{INDUSTRY_LEVELS})))",
    re.IGNORECASE,
)
# A value that ends where the next key starts: a rating level with its bracket ("买入(维持)"), or a figure
# with its unit ("168.00元", "US$14.50", "3,452亿元", "2025年11月10日"); "买入最新" is not one.
_WHOLE_VALUE_RE = re.compile(
    rf"(?:(?:{RATING_LEVELS}|{INDUSTRY_LEVELS}|[\u4e00-\u9fff]{{2,4}})(?:\s*\([^()]{{1,12}}\))?|"
    r"[^:：]{0,12}\d(?:[\d.,%/~-]|\s?(?:元|港元|美元|亿元|万元|亿|万|股|倍|日|bn|mn|m|x|HK\$|US\$))*"
    r"(?:\s*\([^()]{1,24}\))?)",
    re.IGNORECASE,
)
# A rating key and its value with nothing between them: the normaliser joins "投资评级 增持(首次)" into
# "投资评级增持(首次)" (no space between Chinese characters).
_FIELD_JOINED_RE = re.compile(
    r"^[*_]*[【\[]?\s*(?:"
    + "|".join(f"(?P<{k}>{_FIELD_KEYS[k]})" for k in RATING_FIELD_KEYS)
    + rf")[】\]]?(?P<value>(?:{RATING_LEVELS}|{INDUSTRY_LEVELS}|{TW_HK_LEVELS})"
    r"(?:\s*[(（][^()（）]{1,8}[)）])?)[*_]*$",
    re.IGNORECASE,
)
# A rating level with its action in brackets, alone on its line: the company's rating, its key left out (an
# industry's levels, "强于大市(维持)", say nothing of whose rating it is without their key).
_INDUSTRY_ONLY = rf"(?:{INDUSTRY_LEVELS}|看好|看淡|超配|标配|低配)"
_RATING_ACTION_RE = re.compile(
    rf"(?!{_INDUSTRY_ONLY})(?:{RATING_LEVELS})(?:-[A-Z])?\s*\((?:维持|首次|首次覆盖|上调|下调|调高|调低|"
    r"maintained?|initiated?|upgraded?|downgraded?|首次评级|维持评级|上调评级|下调评级)\)",
    re.IGNORECASE,
)
# Market data of a sidebar that are no header field ("总股本:14.63亿股", "52周区间:58.20-139.90元"): a line
# of fields may hold them, which end the field before them ("总市值:898.7亿元总股本:14.63亿股").
MARKET_DATA_KEYS = (
    r"总股本|流通股本?|流通A股|已上市流通股|已发行股数|发行股数|52\s*周|一年内|12个月|每股净资产|净资产|"
    r"资产负债率|主要股东|大股东|第一大股东|ROE|市盈率|市净率|股价区间|日均成交|成交额|换手率|"
    r"潜在(?:升幅|涨幅|空间)|上涨空间|Upside|"
    r"Free\s+float|52-week|Avg\.?\s+daily|Shares\s+outstanding|Major\s+shareholder|Net\s+debt|BVPS|Beta"
)
_MARKET_DATA_KEY = rf"(?:{MARKET_DATA_KEYS})[^:：\d]{{0,12}}[:：]"
_MARKET_DATA_KEY_RE = re.compile(_MARKET_DATA_KEY, re.IGNORECASE)
# A field's key, or market data's not inside a word: after no Chinese, or right after a value's unit.
_ANY_KEY_RE = re.compile(
    rf"(?P<field>{FIELD_KEY_RE.pattern})|(?:(?<![\u4e00-\u9fff])|(?<=[元股%倍\d)])){_MARKET_DATA_KEY}",
    re.IGNORECASE,
)
# A rating level in a cell, with its action in brackets ("买入(首次覆盖)", "Outperform (Maintained)"); a
# scale's definition is no action ("Buy (upside > 15%)", "看好(强于大市10%以上)").
_RATING_CELL_RE = re.compile(
    rf"(?:{RATING_LEVELS}|{INDUSTRY_LEVELS}|{TW_HK_LEVELS})(?:-[A-Z])?(?:\s*\([^()\d%<>]{{1,12}}\))?",
    re.IGNORECASE,
)
# A line that is only a date ("2025年10月22日", "2025-10-22", "22 October 2025") is the header's date field.
DATE_PATTERN = (
    r"(?:(?:\d{4}|\d{2})\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|"
    r"\d{1,2}\s+[A-Z][a-z]{2,8}\.?,?\s+\d{4}|[A-Z][a-z]{2,8}\.?\s+\d{1,2},?\s+\d{4})"
)
DATE_ONLY_RE = re.compile(
    rf"^{DATE_PATTERN}(?:\s*[(（]?(?:星期|周|礼拜)[一二三四五六日天][)）]?)?$"  # "2025年11月18日 星期二"
)
# A date inside a header line that is no field ("证券研究报告 | 2025年11月20日", "2025-11-14 09:32 来源:...").
_DATE_TIME_PLACE_RE = re.compile(
    rf"^(?P<date>{DATE_PATTERN})\s+\d{{1,2}}:\d{{2}}(?:\s+[\u4e00-\u9fff]{{2,4}})?$"
)
_DATE_IN_LINE_RE = re.compile(rf"(?<!\d){DATE_PATTERN}(?!\d)")
# A target price inside a sentence: the key, a verb or "of"/"to" at most, the figure and its currency.
_TARGET_PRICE_IN_RE = re.compile(
    r"(?:目标价(?:格)?|合理价值|target\s+price|price\s+target|\bPT)\s*"
    r"(?:为|至|是|调整为|(?:上调|下调|提高|下修|上修|调升|调降)(?:至|到)|of|to|at|[:：])?\s*"
    r"(?P<value>(?:(?:US|HK|S|NT)?\$|RMB\s?|HKD\s?|USD\s?|¥)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    r"(?:\s*(?:元|港元|港币|美元|新台币|块))?)",
    re.IGNORECASE,
)
# A value of a header field, not a statement: a rating without a clause after it ("买入(维持)", not
# "买入,现下调至中性"); a price or date with a number, few words and no clause ("128.00元", "2025年11月10日",
# "US$12.00 (from US$22.00)"), not "本周碳酸锂价格下跌3%" or "短期承压,估值已处低位".
_CLAUSE_RE = re.compile(r"[，,;](?!\d)")
_FIELD_MAX_CJK = 8
_FIELD_MAX_WORDS = 3
# Currencies and scales, no words of a value: "HK$201.4bn / US$25.9bn" is two figures.
_CURRENCY_RE = re.compile(r"(?:HK|US|NT|S)\$|\b(?:RMB|HKD|USD|CNY)|(?<=\d)(?:bn|mn|tn)\b", re.IGNORECASE)
PIPE_RE = re.compile(r"\s*[|｜]\s*")


def field_values(unit: str) -> list[tuple[str, str]]:
    """The fields of a header line, each (key, value) as `field_value` reads it; a line of several
    ("评级:买入  上次评级:买入  目标价:168.00元", which the normaliser runs together) gives each, when every
    piece from one key to the next (outside brackets, "|", "【" and markup aside) is a field whose value ends
    whole before the next key (`_WHOLE_VALUE_RE`), and so does a line of cells apart by "|" each of which is a
    field, a date or a rating level ("买入(维持) | 目标价:62.3元 | 当前价:48.15元 | 2026年11月28日"); [] when
    the line is no field."""
    if unit.startswith(("|", "｜")):  # a markdown or web page's table of keys and values
        return _key_value_cells(unit) or _field_cells(unit)
    if ("|" in unit or "｜" in unit) and (found := _field_cells(unit)):
        return found
    lead = len(unit) - len(unit.lstrip("*_【[ "))
    if FIELD_KEY_RE.match(unit, lead) or _MARKET_DATA_KEY_RE.match(unit, lead):
        starts, depth, scanned = [], 0, 0
        for m in _ANY_KEY_RE.finditer(unit):  # one pass: the bracket depth where each key starts
            gap = unit[scanned : m.start()]
            depth += gap.count("(") + gap.count("（") - gap.count(")") - gap.count("）")
            scanned = m.start()
            if depth <= 0:
                starts.append((m.start(), m.group("field") is not None))
        ends = [a for a, _ in starts[1:]] + [len(unit)]
        pieces = [(unit[a:b].strip(" *_|｜【["), known) for (a, known), b in zip(starts, ends, strict=True)]
        found = [_field_value(p) if known else _market_datum(p) for p, known in pieces]
        if (
            len(pieces) > 1
            and any(known for _, known in pieces)
            and all(found)
            and all(_WHOLE_VALUE_RE.fullmatch(f[1]) for f in found[:-1] if f is not None)
        ):
            return [f for f, (_, known) in zip(found, pieces, strict=True) if known and f is not None]
    one = _field_value(unit)
    return [one] if one else []


def whole_fields(line: str) -> bool:
    """Whether `line` is a header line of fields each of whose values ends whole ("投资评级:谨慎推荐(首次)
    目标价:78.00元"): a line that ends there, not the start of a paragraph wrapped after its key
    ("投资建议:我们预计公司2025-2027年归母净利润分别为25.6/")."""
    found = field_values(line)
    return bool(found) and all(_WHOLE_VALUE_RE.fullmatch(value) for _, value in found)


# A datum's value starts with its figure ("14.63亿股", "HK$12.3bn") or names a holder and its share ("联想控股
# (31.5%)"); "拟减持(不超过2%)", "较现价仍有35%" are statements.
_DATUM_VALUE_RE = re.compile(
    r"(?:(?:HK\$|US\$|RMB|¥|\$)\s?)?[-+]?\d|[^\d()（）:：]{2,20}\s*[(（]\s*\d[\d.]*\s*%\s*[)）]$"
)


def market_datum(unit: str) -> str | None:
    """The value of a line that is one datum of the header's market data, whole ("总股本:14.63亿股" ->
    "14.63亿股", "52周区间:58.20-139.90元", "主要股东:联想控股(31.5%)"), or None; no header field
    (`FIELD_KEYS`), but a unit of the header all the same."""
    found = _market_datum(unit.strip("*_ "))
    value = found[1] if found else ""
    return value if _WHOLE_VALUE_RE.fullmatch(value) and _DATUM_VALUE_RE.match(value) else None


def _market_datum(piece: str) -> tuple[str, str] | None:
    """(key, value) of a piece of market data on a line of fields ("总股本:14.63亿股"), or None."""
    m = _MARKET_DATA_KEY_RE.match(piece)
    return None if m is None else ("", piece[m.end() :].strip())


def _field_cells(line: str) -> list[tuple[str, str]]:
    """The fields of a line of cells apart by "|", each a field, a date or a rating level, one at least with
    its key ("买入(维持) | 目标价:62.3元 | 2026年11月28日", a converter's "| 投资评级:增持(首次覆盖) |"); a
    rating history's rows have no key."""
    if not FIELD_KEY_RE.search(line):
        return []
    pieces = [c for c in PIPE_RE.split(line.strip(" *_|｜")) if c.strip("*_ ")]
    cells = [_field_value(c) or _rating_cell(c) for c in pieces]
    keyed = any(FIELD_KEY_RE.match(c.strip("*_ ")) for c in pieces)
    return [c for c in cells if c is not None] if pieces and all(cells) and keyed else []


def _key_value_cells(row: str) -> list[tuple[str, str]]:
    """The fields of a table row of keys and values in cells ("| 投资评级 | 买入(维持) |", "| 目标价 |
    21.50元 | 收盘价(2026/11/20) | 27.84元 |"); [] unless every other cell is a key and each pair a field (a
    rating's value a rating level) or market data with a whole value ("| 52周区间 | 58.20-139.90元 |")."""
    cells = [c.strip("*_ ") for c in PIPE_RE.split(row.strip(" |｜"))]
    if len(cells) % 2 or not all(cells):
        return []
    found: list[tuple[str, str]] = []
    for key, value in zip(cells[::2], cells[1::2], strict=True):
        key = key.rstrip(":：") + ":"
        if _MARKET_DATA_KEY_RE.fullmatch(key):  # "| 52周区间 | 58.20-139.90元 |": no field, a value
            if not _WHOLE_VALUE_RE.fullmatch(value):
                return []
            continue
        field = _field_value(key + value) if FIELD_KEY_RE.fullmatch(key) else None
        # A rating's value is a level: "| 投资评级 | 说明 |" is a table's header, not a rating.
        if field is None or (field[0] in RATING_FIELD_KEYS and not _RATING_CELL_RE.fullmatch(value)):
            return []
        found.append(field)
    return found


# A banner of keys over their values: a line of keys alone, apart by spaces ("投资评级 上次评级 目标价
# 当前股价 52周区间 总市值", which the normaliser runs into "投资评级上次评级目标价当前股价 52周区间总市值"),
# each a field's or market data's (a market datum's key ends where the next key or a space starts).
_BANNER_KEY_RE = re.compile(
    rf"\s*(?:(?:{_FIELD_ALTS}){_KEY_BRACKET}|(?:{MARKET_DATA_KEYS})[^\s:：\d()]{{0,4}}?{_KEY_BRACKET})"
    rf"(?=\s|$|(?:{_FIELD_ALTS})|(?:{MARKET_DATA_KEYS}))",
    re.IGNORECASE,
)
_BANNER_MIN_KEYS = 3
_BANNER_MAX_CHARS = 80
Span = tuple[int, int]


def banner_cells(keys: str, values: str) -> list[tuple[Span, Span]] | None:
    """Where each key of a banner's line of keys stands and where its value stands on the next line
    (`values`: "买入(上调) 增持 156.00元 121.37元 58.20-139.90元 651.4亿元"), or None when the two lines are
    no banner: at least three keys, two of them a field's, as many values apart by spaces, and each pair
    a field (a rating's value a rating level) or market data with a whole value, as `_key_value_cells`
    reads a table's row."""
    if len(keys) > _BANNER_MAX_CHARS or not _BANNER_KEY_RE.match(keys):
        return None
    key_spans: list[Span] = []
    pos, end = 0, len(keys.rstrip())
    while pos < end:
        m = _BANNER_KEY_RE.match(keys, pos)
        if m is None:
            return None
        key_spans.append((m.end() - len(m.group().lstrip()), m.end()))
        pos = m.end()
    value_spans = _banner_values(values)
    if len(key_spans) < _BANNER_MIN_KEYS or len(key_spans) != len(value_spans):
        return None
    cells = [keys[a:b] + "|" + values[c:d] for (a, b), (c, d) in zip(key_spans, value_spans, strict=True)]
    if len(_key_value_cells("|" + "|".join(cells) + "|")) < 2:
        return None
    return list(zip(key_spans, value_spans, strict=True))


# A unit the value line may set apart from its figure ("156.00 元"), which belongs to the figure before it.
_UNIT_ALONE_RE = re.compile(r"(?:亿元|万元|元|港元|美元|亿股|亿|万|股|倍|%)")


def _banner_values(values: str) -> list[Span]:
    """Where the values of a banner's value line stand: apart by spaces, a unit set apart going with its
    figure ("156.00 元"), and rating levels the normaliser ran together ("买入 增持" reads "买入增持") each
    on its own."""
    spans: list[Span] = []
    for m in re.finditer(r"\S+", values):
        a, b = m.span()
        if spans and _UNIT_ALONE_RE.fullmatch(m.group()) and values[spans[-1][1] - 1].isdigit():
            spans[-1] = (spans[-1][0], b)
            continue
        levels = list(_RATING_CELL_RE.finditer(values, a, b))
        if len(levels) > 1 and sum(x.end() - x.start() for x in levels) == b - a:  # levels, nothing else
            spans += [x.span() for x in levels]
        else:
            spans.append((a, b))
    return spans


def _rating_cell(cell: str) -> tuple[str, str] | None:
    """("rating", level) of a cell that is only a rating level, with its bracket ("买入(维持)")."""
    cell = cell.strip("*_ ")
    return ("rating", cell) if _RATING_CELL_RE.fullmatch(cell) else None


def target_price_in(text: str) -> str | None:
    """The target price a sentence gives ("...对应目标价34.00元,首次覆盖..." -> "34.00元", "raise our PT to
    US$26" -> "US$26"), or None."""
    m = _TARGET_PRICE_IN_RE.search(text)
    return m.group("value") if m else None


def date_in(line: str) -> str | None:
    """The first date written in `line` ("证券研究报告 | 2025年11月20日" -> "2025年11月20日"), or None."""
    m = _DATE_IN_LINE_RE.search(line)
    return m.group(0) if m else None


def field_value(unit: str) -> tuple[str, str] | None:
    """(key, value) of a field of the report's header ("投资评级:买入(维持)" -> ("rating", "买入(维持)"); the
    keys: `FIELD_KEYS`; a line that is only a date is the date), or None if `unit` is not one. The key
    and value may stand apart by a colon, a bracket or a space ("目标价 286.00元"); of a line of several
    fields, the first (`field_values`)."""
    found = field_values(unit)
    return found[0] if found else None


def _field_value(unit: str) -> tuple[str, str] | None:
    if DATE_ONLY_RE.match(unit.strip("*_ ")):
        return "date", unit.strip("*_ ")
    if m := _DATE_TIME_PLACE_RE.match(unit.strip("*_ ")):  # a WeChat byline: "2026年11月28日 07:45 上海"
        return "date", m.group("date")
    if _RATING_ACTION_RE.fullmatch(unit.strip("*_ ")):  # a sidebar's rating without its key: "强烈推荐(维持)"
        return "rating", unit.strip("*_ ")
    m = _FIELD_RE.match(unit) or _FIELD_JOINED_RE.match(unit)
    if m is None:
        return None
    key = next(k for k in m.groupdict() if k != "value" and m.group(k))
    value = m.group("value").rstrip("*_ ")
    value = PIPE_RE.split(value, maxsplit=1)[0]  # a value ends where the next cell of a row starts
    if _CLAUSE_RE.search(value) or not value:
        return None
    if key not in RATING_FIELD_KEYS and not (
        any(ch.isdigit() for ch in value)
        and len(CJK_RE.findall(value)) <= _FIELD_MAX_CJK
        and len(re.findall(r"[A-Za-z]{2,}", _CURRENCY_RE.sub("", value))) <= _FIELD_MAX_WORDS
    ):
        return None
    return key, _with_key_unit(value, unit[m.end(key) : m.start("value")])


# A unit or currency the key carries for a bare figure ("总市值(亿元) 792", "目标价(港元):86.00"): the value
# keeps it ("792亿元"), as it would have had it written after the figure.
_KEY_UNIT_RE = re.compile(
    r"\(\s*(亿元|万元|元|港元|港币|美元|人民币|RMB|CNY|HKD|USD|HK\$|US\$|亿|万|%)\s*\)", re.IGNORECASE
)
_BARE_FIGURE_RE = re.compile(r"[\d.,]*\d")
_UNIT_WRITTEN = {"人民币": "元", "rmb": "元", "cny": "元", "港币": "港元", "hkd": "港元", "usd": "美元"}


def _with_key_unit(value: str, between: str) -> str:
    """`value` with the unit in the key's bracket (`between`: what stands between key and value) when it
    is a bare figure; else `value`."""
    m = _KEY_UNIT_RE.search(between)
    if m is None or not _BARE_FIGURE_RE.fullmatch(value):
        return value
    unit = m.group(1)
    if unit.endswith("$"):
        return unit.upper() + value
    return value + _UNIT_WRITTEN.get(unit.lower(), unit)


def field_key(unit: str) -> str | None:
    """Which field of the report's header `unit` is (one of `FIELD_KEYS`), or None if it is not one."""
    found = field_value(unit)
    return found[0] if found else None
