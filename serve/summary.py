"""Per-report summary of tagged sentences: stated rating, theme shares, sentiment index, evidence.

Only units of kind `SUMMARY_KIND` ("sentence") count in the shares and indices; the stated rating is read
from `RATING_KINDS` (sentences and headings: a report's header line "【投资评级】买入(维持)" states it).
Table rows, contact lines and disclaimers (a rating scale's "买入:预期未来6个月..." among them) are never
the stated rating."""

from __future__ import annotations

from typing import Any

from fintag.data.split import KINDS, RATING_KINDS, SUMMARY_KIND
from fintag.data.taxonomy import RATING, SENTIMENT, THEMES

EVIDENCE_PER_LABEL = 3


def _brief(s: dict[str, Any], score: float) -> dict[str, Any]:
    return {"text": s["text"], "start": s.get("start"), "end": s.get("end"), "score": round(score, 4)}


def _index(sentences: list[dict[str, Any]]) -> float | None:
    if not sentences:
        return None
    pos = sum(s["sentiment"]["label"] == "positive" for s in sentences)
    neg = sum(s["sentiment"]["label"] == "negative" for s in sentences)
    return round((pos - neg) / len(sentences), 4)


def summarize(units: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary of one report's tagged units (each with text, offsets, kind and labels); `sentences` and
    every share or index count the units of kind "sentence" only (None when there is none), the stated
    rating reads sentences and headings, `kind_counts` counts all units."""
    sentences = [s for s in units if s.get("kind", SUMMARY_KIND) == SUMMARY_KIND]
    n = len(sentences)
    rated = [
        s
        for s in units
        if s.get("kind", SUMMARY_KIND) in RATING_KINDS and s["rating"]["label"] != RATING.default
    ]
    rated.sort(key=lambda s: s["rating"]["score"], reverse=True)
    rating: dict[str, Any] = {"label": RATING.default, "score": None, "evidence": None}
    if rated:
        top = rated[0]
        rating = {
            "label": top["rating"]["label"],
            "score": top["rating"]["score"],
            "evidence": _brief(top, top["rating"]["score"]),
        }
    sentiment_counts = {
        label: sum(s["sentiment"]["label"] == label for s in sentences) for label in SENTIMENT.labels
    }
    by_theme = {t: [s for s in sentences if t in s["themes"]["labels"]] for t in THEMES.labels}
    evidence: dict[str, list[dict[str, Any]]] = {}
    for label in ("positive", "negative"):
        hits = [s for s in sentences if s["sentiment"]["label"] == label]
        hits.sort(key=lambda s: s["sentiment"]["score"], reverse=True)
        evidence[f"sentiment:{label}"] = [
            _brief(s, s["sentiment"]["score"]) for s in hits[:EVIDENCE_PER_LABEL]
        ]
    for t, hits in by_theme.items():
        hits = sorted(hits, key=lambda s: s["themes"]["scores"][t], reverse=True)
        evidence[f"themes:{t}"] = [_brief(s, s["themes"]["scores"][t]) for s in hits[:EVIDENCE_PER_LABEL]]
    return {
        "sentences": n,
        "kind_counts": {kind: sum(s.get("kind", SUMMARY_KIND) == kind for s in units) for kind in KINDS},
        "rating": rating,
        "ratings_stated": [{"label": s["rating"]["label"], **_brief(s, s["rating"]["score"])} for s in rated],
        "sentiment_counts": sentiment_counts,
        "sentiment_index": _index(sentences),
        # No sentence, no share: None, as the sentiment indices (0.0 would read as "no theme found").
        "theme_share": {t: round(len(h) / n, 4) if n else None for t, h in by_theme.items()},
        "theme_sentiment_index": {t: _index(h) for t, h in by_theme.items()},
        "evidence": evidence,
    }
