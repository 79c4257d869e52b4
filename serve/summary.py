"""Per-report summary of tagged sentences: title, stated rating, theme shares, sentiment index, evidence.

Only units of kind `SUMMARY_KIND` ("sentence") count in the shares and indices, each statement once: a
sentence that restates an earlier one (a summary paragraph repeated in the body, `restatements`) is listed
in `restated` and counted nowhere else, and the title line (`title`, the splitter's) is the report's
headline, not one of its sentences, as other titles are not; the stated rating is read
from `RATING_KINDS` (sentences, titles and the header's rating field "【投资评级】买入(维持)", which comes
first: `fintag.serve.stated_rating`). Table rows, contact lines and disclaimers (a rating scale's
"买入:预期未来6个月..." among them) are never the stated rating."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fintag.data.dedup import NEAR_DUP_THRESHOLD, jaccard, restatements
from fintag.data.fields import date_in, field_values, target_price_in
from fintag.data.split import (
    KINDS,
    RATING_KINDS,
    SUMMARY_KIND,
    Title,
    ends_sentence,
    names_a_digest,
    names_another_document,
    without_company_code,
)
from fintag.data.taxonomy import RATING, SENTIMENT, THEMES
from fintag.serve.stated_rating import (
    PEER_TIER,
    PREVIOUS_TIER,
    RATING_FLOOR,
    is_previous,
    rating_tier,
    unit_text,
)

EVIDENCE_PER_LABEL = 3
HEADER_LOOK = 10  # the units of a report's header looked at for a digest's name ("晨会纪要") or a date


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
    text = unit_text(unit)
    if unit.get("kind", SUMMARY_KIND) == SUMMARY_KIND and ends_sentence(text):
        return None
    return None if names_another_document(text) else date_in(text)


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
    titles = {unit_text(units[i]) for i in headline} | {"".join(unit_text(units[i]) for i in headline)}
    titles = {without_company_code(t).rstrip("。.") for t in titles if t}
    compared = [_as_restated(unit_text(units[i]), titles, i in headline) for i in looked]
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
    header = units[:HEADER_LOOK]
    digest = any(names_a_digest(unit_text(u)) for u in header if u.get("kind", SUMMARY_KIND) in RATING_KINDS)
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
        for key, value in field_values(unit_text(u)) if u.get("kind") == "field" else []:
            if key not in fields:  # the header's, the first of each key
                fields[key] = {"value": value, "index": i}
    if digest:  # an item's rating or price ("买入(维持)" under its company) is none of the digest's fields
        fields = {k: v for k, v in fields.items() if k in ("date", "industry_rating")}
    if "date" not in fields:  # a date in another header line ("证券研究报告 | 2025年11月20日")
        found = next(
            ((i, d) for i, u in enumerate(header) if (d := header_date(u))),
            None,
        )
        if found:
            fields["date"] = {"value": found[1], "index": found[0]}
    # The target price of the unit that states the report's rating ("...目标价34.00元,首次覆盖给予增持"), or,
    # when a field or the title states it, of the first sentence that states the same rating as the report's
    # own (an action or a plain statement: "...对应目标价292.60元,维持“买入”评级"), never a peer's ("We prefer
    # Cambricon, which we rate Buy with a target price of RMB 1,650").
    if top and "target_price" not in fields:
        stating = sorted(
            (
                s
                for s in current
                if s.get("kind") != "field"
                and s["rating"]["label"] == top["rating"]["label"]
                and tiers[id(s)] < PEER_TIER
            ),
            key=lambda s: (s is not top, tiers[id(s)], -s["rating"]["score"]),
        )
        found = next(((s, p) for s in stating if (p := target_price_in(unit_text(s)))), None)
        if found:
            fields["target_price"] = {"value": found[1], "index": brief(found[0], 0.0)["index"]}
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
