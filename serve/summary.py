"""Per-report summary of tagged sentences: title, stated rating, theme shares, sentiment index, evidence.

Only units of kind `SUMMARY_KIND` ("sentence") count in the shares and indices, each statement once: a
sentence that restates an earlier one (a summary paragraph repeated in the body, `restatements`) is listed
in `restated` and counted nowhere else, and the title line (`title`, the splitter's) is the report's
headline, not one of its sentences, as other titles are not; the stated rating is read
from `RATING_KINDS` (sentences, titles and the header's rating field "【投资评级】买入(维持)", which comes
first: `rating_tier`). Table rows, contact lines and disclaimers (a rating scale's "买入:预期未来6个月..."
among them) are never the stated rating."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fintag.data.dedup import NEAR_DUP_THRESHOLD, jaccard, restatements
from fintag.data.split import (
    KINDS,
    RATING_KINDS,
    SUMMARY_KIND,
    Title,
    date_in,
    ends_sentence,
    field_key,
    field_values,
    names_a_digest,
    names_another_document,
    target_price_in,
    without_company_code,
)
from fintag.data.taxonomy import (
    PREVIOUS_RATING_WORDS,
    RATING,
    RATING_WORDS_EN,
    RATING_WORDS_TW_HK,
    RATING_WORDS_ZH,
    SENTIMENT,
    THEMES,
)

EVIDENCE_PER_LABEL = 3
HEADER_LOOK = 10  # the units of a report's header looked at for a digest's name ("晨会纪要") or a date


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
_ACTION_RE = re.compile(
    r"(?:维持|首次|上调|下调|调升|调降|调高|调低).{0,12}?评[级等]|评[级等].{0,6}?(?:上调|下调|调升|调降|维持)|"
    r"(?:上调|下调|调升|调降|调高|调低)至|"
    r"首次覆盖|\b(?:maintain\w*|reiterat\w*|initiat\w*|upgrad\w*|downgrad\w*|reaffirm\w*)\b",
    re.IGNORECASE,
)


def _read(unit: dict[str, Any]) -> str:
    """The text the markers are read in: normalised, as the splitter classified it (a traditional report's
    "投資評等:買進" is "投资评等:买进" there), or the text where a unit has no normalised form."""
    return unit.get("text_normalized") or unit["text"]


def _as_restated(text: str, titles: set[str], is_title: bool) -> str:
    """The text compared for restatements: the title, and a line that is the title with "company (code):"
    before it or without it (a PDF's running header "中微公司(688012.SH):刻蚀设备订单饱满"), without that
    prefix; other prefixes stay (a morning note's "中际旭创(300308):维持买入评级" and "新易盛(300502):
    维持买入评级" are two statements). `titles`: the title's texts, without the prefix and end punctuation."""
    core = without_company_code(text)
    return core if is_title or core.rstrip("。.") in titles else text


def header_date(unit: dict[str, Any]) -> str | None:
    """The date a header line of no date field gives: a line that does not end a sentence, or is no sentence
    ("2024年12月26日 08:18 市场投研资讯", "China Autos & Mobility | 21 November 2025"), but never another
    report's or a figure's ("《...》2025-08-26", "图1:2020年1月1日以来...")."""
    text = _read(unit)
    if unit.get("kind", SUMMARY_KIND) == SUMMARY_KIND and ends_sentence(text):
        return None
    return None if names_another_document(text) else date_in(text)


def rating_tier(unit: dict[str, Any]) -> int | None:
    """The tier of a unit's stated rating (lower first; `PREVIOUS_TIER`: a previous rating), or None when
    the unit cannot state the report's rating (a field that is not a rating, a unit naming no rating, another
    broker's rating)."""
    text = _read(unit)
    if unit.get("kind") == "field":
        return _FIELD_TIERS.get(field_key(text))
    if not _RATING_MARKER_RE.search(text) or _OTHER_BROKER_RE.search(text):
        return None
    if _CREDIT_RE.search(text) and not _LEVEL_RE.search(text):
        return None
    if _ACTION_RE.search(text):
        return 2
    return 4 if _PREVIOUS_RE.search(text) or _PEER_RE.search(text) else 3


def is_previous(unit: dict[str, Any]) -> bool:
    """Whether a unit states a previous rating: a previous-rating field, or a sentence that names one and
    no rating action ("原评级:增持" inside "评级上调至买入(原评级:增持)" is not)."""
    if unit.get("kind") == "field":
        return field_key(_read(unit)) == "previous_rating"
    text = _read(unit)
    return _PREVIOUS_RE.search(text) is not None and not _ACTION_RE.search(text)


Brief = Callable[[dict[str, Any], float], dict[str, Any]]


def _briefs(units: list[dict[str, Any]]) -> Brief:
    """A unit as evidence: its text, offsets, position among `units` (`index`: the `sentence_index` of
    `fintag tag`'s sentence records) and a score."""
    where = {id(u): i for i, u in enumerate(units)}

    def brief(s: dict[str, Any], score: float) -> dict[str, Any]:
        return {
            "text": s["text"],
            "start": s.get("start"),
            "end": s.get("end"),
            "index": where[id(s)],
            "score": round(score, 4),
        }

    return brief


def _evidence(
    hits: list[dict[str, Any]], score: Callable[[dict[str, Any]], float], brief: Brief
) -> list[dict[str, Any]]:
    """The `EVIDENCE_PER_LABEL` highest-scoring of `hits`, a near-duplicate of one already chosen (the
    dataset's rule, `fintag.data.dedup`: "30%" and "30.0%", which `restatements` keeps apart) left out."""
    chosen: list[dict[str, Any]] = []
    for s in sorted(hits, key=score, reverse=True):
        if all(jaccard(s["text"], c["text"]) <= NEAR_DUP_THRESHOLD for c in chosen):
            chosen.append(s)
            if len(chosen) == EVIDENCE_PER_LABEL:
                break
    return [brief(s, score(s)) for s in chosen]


def _index(sentences: list[dict[str, Any]]) -> float | None:
    if not sentences:
        return None
    pos = sum(s["sentiment"]["label"] == "positive" for s in sentences)
    neg = sum(s["sentiment"]["label"] == "negative" for s in sentences)
    return round((pos - neg) / len(sentences), 4)


def summarize(units: list[dict[str, Any]], title: Title | None = None) -> dict[str, Any]:
    """Summary of one report's tagged units (each with text, offsets, kind and labels) and its title (the
    splitter's `Segmentation.title`); `sentences` counts the units of kind "sentence" but the title line's,
    every share, index and evidence list counts them each statement once (`restated` lists the repeats; None
    when there is no sentence), the stated rating reads sentences, titles and the header's rating field
    (`rating_tier`, the title line's units included),
    `kind_counts` counts all units, and evidence gives each unit's position among `units` (`index`)."""
    brief = _briefs(units)
    headline = range(title.index, title.index + title.units) if title else range(0)
    where = [
        i for i, s in enumerate(units) if s.get("kind", SUMMARY_KIND) == SUMMARY_KIND and i not in headline
    ]
    # The title line is looked at too, so that a copy of it in the text (a weekly's title repeated under
    # the platform's header) counts as a restatement, not as a sentence.
    looked = sorted([*headline, *where])
    titles = {_read(units[i]) for i in headline} | {"".join(_read(units[i]) for i in headline)}
    titles = {without_company_code(t).rstrip("。.") for t in titles if t}
    compared = [_as_restated(_read(units[i]), titles, i in headline) for i in looked]
    repeats = {looked[j] for j in restatements(compared)}
    restated = [i for i in where if i in repeats]
    sentences = [units[i] for i in where if i not in repeats]
    n = len(sentences)
    tiers = {  # a restated sentence states its rating once, where it first stands
        id(s): rating_tier(s)
        for i, s in enumerate(units)
        if s.get("kind", SUMMARY_KIND) in RATING_KINDS
        and s["rating"]["label"] != RATING.default
        and i not in repeats
    }
    rated = sorted(
        (s for s in units if tiers.get(id(s)) is not None), key=lambda s: s["rating"]["score"], reverse=True
    )
    rating: dict[str, Any] = {"label": RATING.default, "score": None, "evidence": None}
    top: dict[str, Any] = {}  # the unit stating it
    # A digest (a morning note) rates several companies and industries, none of them its subject.
    digest = any(
        names_a_digest(_read(u)) for u in units[:HEADER_LOOK] if u.get("kind", SUMMARY_KIND) in RATING_KINDS
    )
    current = [s for s in rated if tiers[id(s)] != PREVIOUS_TIER and not digest]
    current = [s for s in current if s["rating"]["score"] >= RATING_FLOOR] or current
    if current:
        top = min(current, key=lambda s: (tiers[id(s)], -s["rating"]["score"]))
        rating = {
            "label": top["rating"]["label"],
            "score": top["rating"]["score"],
            "evidence": brief(top, top["rating"]["score"]),
        }
    sentiment_counts = {
        label: sum(s["sentiment"]["label"] == label for s in sentences) for label in SENTIMENT.labels
    }
    by_theme = {t: [s for s in sentences if t in s["themes"]["labels"]] for t in THEMES.labels}
    evidence: dict[str, list[dict[str, Any]]] = {}
    for label in ("positive", "negative"):
        hits = [s for s in sentences if s["sentiment"]["label"] == label]
        evidence[f"sentiment:{label}"] = _evidence(hits, lambda s: s["sentiment"]["score"], brief)
    for t, hits in by_theme.items():
        evidence[f"themes:{t}"] = _evidence(hits, lambda s, t=t: s["themes"]["scores"][t], brief)
    fields: dict[str, dict[str, Any]] = {}
    for i, u in enumerate(units):
        for key, value in field_values(_read(u)) if u.get("kind") == "field" else []:
            if key not in fields:  # the header's, the first of each key
                fields[key] = {"value": value, "index": i}
    if "date" not in fields:  # a date in another header line ("证券研究报告 | 2025年11月20日")
        found = next(
            ((i, d) for i, u in enumerate(units[:HEADER_LOOK]) if (d := header_date(u))),
            None,
        )
        if found:
            fields["date"] = {"value": found[1], "index": found[0]}
    # The target price of the unit that states the report's rating ("...目标价34.00元,首次覆盖给予增持"), not
    # a peer's ("We prefer Cambricon, which we rate Buy with a target price of RMB 1,650").
    price = target_price_in(_read(top)) if top and top.get("kind") != "field" else None
    if "target_price" not in fields and price:
        fields["target_price"] = {"value": price, "index": rating["evidence"]["index"]}
    return {
        "title": {"text": title.text, "index": title.index, "units": title.units} if title else None,
        "sentences": len(where),
        "restated": restated,
        "kind_counts": {kind: sum(s.get("kind", SUMMARY_KIND) == kind for s in units) for kind in KINDS},
        "rating": rating,
        "ratings_stated": [
            {"label": s["rating"]["label"], **brief(s, s["rating"]["score"]), "previous": is_previous(s)}
            for s in rated
        ],
        "sentiment_counts": sentiment_counts,
        "sentiment_index": _index(sentences),
        # No sentence, no share: None, as the sentiment indices (0.0 would read as "no theme found").
        "theme_share": {t: round(len(h) / n, 4) if n else None for t, h in by_theme.items()},
        "theme_sentiment_index": {t: _index(h) for t, h in by_theme.items()},
        "evidence": evidence,
        "fields": fields,
    }
