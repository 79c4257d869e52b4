"""Which rating a report states: the tier of each unit that may state one (`rating_tier`), whether it is a
previous rating (`is_previous`), and the text the markers are read in (`unit_text`). `fintag.serve.summary`
picks the stated rating from these.
"""

from __future__ import annotations

import re
from typing import Any

from fintag.data.fields import field_key
from fintag.data.taxonomy import PREVIOUS_RATING_WORDS, RATING_WORDS_EN, RATING_WORDS_TW_HK, RATING_WORDS_ZH

# The stated rating: among the units that state one with a probability of at least `RATING_FLOOR` (all of
# them when none does), the highest-scoring one of the best tier present:
#   0  the header's rating field ("投资评级:买入(维持)", "Rating: BUY");
#   1  the header's industry rating field ("行业评级:强于大市", `industry_rating`), when the company's is
#      not there;
#   2  a title or sentence with a rating action ("维持买入评级", "评级上调至买入", "We maintain Hold"),
#      whatever else it names ("参考可比公司估值,给予30倍PE,维持买入评级");
#   3  any other title or sentence ("给予公司买入评级");
#   4  a sentence that names a previous rating or a peer ("我们此前给予公司买入评级",
#      "可比公司...给予买入评级").
# A previous-rating field ("上次评级:买入", `PREVIOUS_TIER`) is listed in `ratings_stated` but never the
# stated rating; a field of another key ("目标价:48.5元") states no rating, whatever its labels.
PEER_TIER = 4  # a sentence naming a previous rating or a peer's
PREVIOUS_TIER = 5
_FIELD_TIERS = {"rating": 0, "industry_rating": 1, "previous_rating": PREVIOUS_TIER}
RATING_FLOOR = 0.5
_PREVIOUS_RE = re.compile(
    rf"{PREVIOUS_RATING_WORDS}|此前(?:给予|维持)|previous(?:ly)?\s+rated|(?:was|were)\s+(?:previously\s+)?rated",
    re.IGNORECASE,
)
_PEER_RE = re.compile(r"可比(?:公司|标的)|同业公司|\bpeers?\b|\bcomparables?\b", re.IGNORECASE)
# A unit that names no rating level and no rating cannot state one, whatever the model gives it (a heading
# of the company's name and code, "Share price (14 Nov): HK$6.09").
_LEVELS_ZH = (*RATING_WORDS_ZH, *RATING_WORDS_TW_HK, "强于大市", "领先大市", "落后大市")
_LEVELS_EN = (
    *RATING_WORDS_EN, "Positive", "Negative", "In-line", "Equal Weight", "Add", "Peer Perform",
    "Market Outperform", "Market Underperform", "Top Pick",
)  # fmt: skip


def _words_re(zh: tuple[str, ...], en: tuple[str, ...]) -> re.Pattern[str]:
    """Any of the Chinese words, or of the English ones as whole words."""
    return re.compile(
        "|".join(map(re.escape, zh)) + r"|(?<![A-Za-z])(?:" + "|".join(map(re.escape, en)) + r")(?![A-Za-z])",
        re.IGNORECASE,
    )


_LEVEL_RE = _words_re(_LEVELS_ZH, _LEVELS_EN)
_RATING_MARKER_RE = _words_re((*_LEVELS_ZH, "评级", "评等"), (*_LEVELS_EN, "rating", "rated"))
# A credit rating ("主体评级:AA+ 评级展望:稳定", a bond's "AA+"): a unit that names one and no investment
# rating's level states none.
_CREDIT_RE = re.compile(
    r"(?:主体|债项|信用|长期|短期)(?:信用)?评级|评级展望|(?<![A-Za-z])(?:AAA|AA[+-]?|A-1|BBB[+-]?)(?![A-Za-z])"
)
# Another broker's rating, reported ("某外资券商给予“买进”评等", "另一家美系外资维持“中立”评等", "Consensus
# rating is Buy"): not the report's, in any tier. In one clause: the broker, a rating action and a rating
# (a level, 评级 or 评等) after it, with no "我们" between; a broker's word in another sense ("外资持股",
# "投行业务", "同业负债", "汇丰控股", "券商板块") or with no rating after its verb ("外资持股比例持续上调,
# 我们维持买入评级") is none.
_BROKERS = (
    "外资|外商|投行|券商|大行|同业|法人|投顾|机构|高盛|摩根士丹利|大摩|小摩|摩根大通|花旗|瑞银|美银|野村|"
    "麦格理|汇丰|德银|巴克莱|杰富瑞|伯恩斯坦|瑞信|里昂"
)
_OTHER_BROKER_RE = re.compile(
    rf"(?:{_BROKERS})(?!板块|行业|股|指数|控股|业务|持股|持仓|负债|存单|比例|资金|流入|流出)"
    r"(?:(?!我们|本报告|[,，。;；:：]).){0,10}?(?:给予|维持|上调|下调|调升|调降|调高|调低|重申|首次覆盖|喊买)"
    r"(?:(?![,，。;；]).){0,10}?"
    rf"(?:{'|'.join(map(re.escape, (*_LEVELS_ZH, '评级', '评等')))})|"
    r"\b(?:other|another)\s+(?:brokers?|houses?|analysts?)\s+(?:rate|have|maintain|give)|\bconsensus\s+rating\b",
    re.IGNORECASE,
)
# A list of picks: every level stands in brackets after a company's name ("招商银行(增持)", "重点推荐中际旭创
# (买入)、新易盛(买入)"), with no 评级: the companies' ratings, as a strategy or industry report lists them;
# not after a rating action's verb ("上调至(买入)", "给予(买入)", "维持(增持)").
_PICK_RE = re.compile(
    r"(?<!维持)(?<!给予)(?<!上调至)(?<!下调至)(?<!调整为)(?<!调升至)(?<!调降至)(?<!评级为)(?<!首次覆盖)"
    r"\((?:" + "|".join(map(re.escape, _LEVELS_ZH)) + r")\)"
)
_PICK_VERBS_RE = re.compile(r"重点推荐|推荐关注|建议关注")  # "推荐" that recommends the picks, no level
_ACTION_RE = re.compile(
    r"(?:维持|首次|上调|下调|调升|调降|调高|调低).{0,12}?评[级等]|评[级等].{0,6}?(?:上调|下调|调升|调降|维持)|"
    r"(?:上调|下调|调升|调降|调高|调低)至|"
    r"首次覆盖|\b(?:maintain\w*|reiterat\w*|initiat\w*|upgrad\w*|downgrad\w*|reaffirm\w*)\b",
    re.IGNORECASE,
)


def unit_text(unit: dict[str, Any]) -> str:
    """The text the markers are read in: normalised, as the splitter classified it (a traditional report's
    "投資評等:買進" is "投资评等:买进" there), or the text where a unit has no normalised form."""
    return unit.get("text_normalized") or unit["text"]


def rating_tier(unit: dict[str, Any]) -> int | None:
    """The tier of a unit's stated rating (lower first; `PREVIOUS_TIER`: a previous rating), or None when
    the unit cannot state the report's rating (a field that is not a rating, a unit naming no rating, another
    broker's rating)."""
    text = unit_text(unit)
    if unit.get("kind") == "field":
        return _FIELD_TIERS.get(field_key(text))
    if not _RATING_MARKER_RE.search(text) or _OTHER_BROKER_RE.search(text):
        return None
    if _CREDIT_RE.search(text) and not _LEVEL_RE.search(text):
        return None
    if _names_picks(text):
        return None
    if _ACTION_RE.search(text):
        return 2
    return PEER_TIER if _PREVIOUS_RE.search(text) or _PEER_RE.search(text) else 3


def _names_picks(text: str) -> bool:
    if "评级" in text or "评等" in text or not _PICK_RE.search(text):
        return False
    return _LEVEL_RE.search(_PICK_VERBS_RE.sub("", _PICK_RE.sub("", text))) is None


def is_previous(unit: dict[str, Any]) -> bool:
    """Whether a unit states a previous rating: a previous-rating field, or a sentence that names one and
    no rating action ("原评级:增持" inside "评级上调至买入(原评级:增持)" is not)."""
    if unit.get("kind") == "field":
        return field_key(unit_text(unit)) == "previous_rating"
    text = unit_text(unit)
    return _PREVIOUS_RE.search(text) is not None and not _ACTION_RE.search(text)
