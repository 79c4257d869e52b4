"""Request and response models of the HTTP API; the tag models are generated from the label taxonomy, so the
published schema follows it."""

from __future__ import annotations

import logging
from typing import Literal

from fintag.data.fields import FIELD_KEYS
from fintag.data.split import KINDS
from fintag.data.taxonomy import LANGS, RATING, SENTIMENT, TAXONOMY, THEMES, LabelGroup
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

logger = logging.getLogger(__name__)


def _group_model(group: LabelGroup) -> type[BaseModel]:
    label = Literal[group.labels]  # type: ignore[valid-type]
    scores = (dict[label, float], Field(description="probability of each label"))  # type: ignore[valid-type]
    name = "".join(part.title() for part in group.name.split("_"))
    if group.multi_label:
        return create_model(
            f"{name}Tags",
            __doc__=f"{group.description}; labels whose probability reaches its threshold",
            labels=(list[label], ...),  # type: ignore[valid-type]
            scores=scores,
        )
    return create_model(
        f"{name}Tag",
        __doc__=f"{group.description}; the most probable label",
        label=(label, ...),
        score=(float, ...),
        scores=scores,
    )


SentenceTags = create_model(
    "SentenceTags",
    __doc__="Labels of one sentence, one entry per label group of the taxonomy.",
    **{g.name: (_group_model(g), ...) for g in TAXONOMY},  # type: ignore[call-overload]
)
ReportSentence = create_model(
    "ReportSentence",
    __base__=SentenceTags,
    __doc__="A unit of the report (original and normalised text, offsets in the original) and its labels.",
    text=(str, Field(description="the text as written in the report")),
    text_normalized=(str, Field(description="the text the model read (normalised)")),
    start=(int, ...),
    end=(int, ...),
    kind=(Literal[tuple(KINDS)], Field(description="; ".join(f"{k}: {v}" for k, v in KINDS.items()))),
    lang=(Literal[LANGS], ...),  # type: ignore[valid-type]
)
SentimentLabel = Literal[SENTIMENT.labels]  # type: ignore[valid-type]
ThemeLabel = Literal[THEMES.labels]  # type: ignore[valid-type]
RatingLabel = Literal[RATING.labels]  # type: ignore[valid-type]
MAX_OFFSET = 2**31 - 1
# The longest text of one request field: a report for /v1/tag-report, and so also the longest unit (sentence,
# heading...) it can return, which /v1/reviews must then accept (the splitter cuts long units only at commas,
# so a unit can be as long as its report). /v1/tag's per-sentence limit (--max_chars_per_item) is at most
# this. A body within the default --max_body_bytes (1,000,000) never holds a longer text.
MAX_TEXT_CHARS = 1_000_000


class Evidence(BaseModel):
    text: str
    start: int | None
    end: int | None
    index: int = Field(description="the unit's position among the report's units (sentences[index])")
    score: float


class RatingSummary(BaseModel):
    label: RatingLabel
    score: float | None
    evidence: Evidence | None


class StatedRating(Evidence):
    label: RatingLabel
    previous: bool = Field(
        description="a previous rating (上次评级:买入, 'we previously rated'): never the report's stated "
        "rating while a current one is stated"
    )


class HeaderField(BaseModel):
    value: str = Field(
        description="the field's value after its key, normalised as the model read it (half-width, "
        "simplified): '买入(维持)', '128元'"
    )
    index: int = Field(description="the unit's position among the report's units (sentences[index])")


class ReportTitle(BaseModel):
    text: str = Field(description="the title line as written, its markdown left out")
    index: int = Field(description="the position of the title line's first unit (sentences[index])")
    units: int = Field(description="how many units the title line holds, from sentences[index] on")


class ReportSummary(BaseModel):
    title: ReportTitle | None = Field(
        description="the report's title: the line starting one of its first three units when that reads "
        "as one (no end punctuation, not a section heading such as 投资要点 or page furniture such as "
        "证券研究报告); null when the text begins without one. Read for the stated rating, not counted "
        "among the sentences"
    )
    sentences: int = Field(
        description="units of kind sentence, the title line's aside: the only ones the other figures count"
    )
    restated: list[int] = Field(
        description="positions (sentences[index]) of sentences that restate an earlier one or the title "
        "(the same text, or a similar one with the same figures that only adds or leaves out a few words, "
        "never a negation): counted once, so left out of the counts, shares, indices, evidence and stated "
        "ratings"
    )
    kind_counts: dict[str, int]
    rating: RatingSummary
    ratings_stated: list[StatedRating]
    sentiment_counts: dict[SentimentLabel, int] = Field(description="counted sentences of each sentiment")
    sentiment_index: float | None = Field(
        description="(positive - negative) / counted sentences (sentences - restated); null when there is "
        "no sentence"
    )
    theme_share: dict[ThemeLabel, float | None] = Field(
        description="share of the counted sentences carrying each theme; null when there is no sentence"
    )
    theme_sentiment_index: dict[ThemeLabel, float | None]
    evidence: dict[str, list[Evidence]]
    fields: dict[Literal[FIELD_KEYS], HeaderField] = Field(  # type: ignore[valid-type]
        description="the report's header fields (units of kind field), the first of each key: "
        + ", ".join(FIELD_KEYS)
    )


class TagReportResponse(BaseModel):
    report_id: str
    sentences: list[ReportSentence]  # type: ignore[valid-type]
    summary: ReportSummary


class TagRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: str | list[str] = Field(
        description="one sentence, or a list of sentences; the answer has the same shape",
        examples=["公司维持买入评级，算力业务收入同比增长。"],
    )


class TagReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(
        max_length=MAX_TEXT_CHARS,
        description="the report's text; it is split with fintag's sentence splitter",
    )
    report_id: str | None = Field(default=None, max_length=200, description="echoed back (default 'report')")


class ReadReportResponse(BaseModel):
    report_id: str = Field(description="the file name without its extension")
    text: str = Field(description="the report's text, decoded")
    encoding: str = Field(description="the encoding detected (or 'pdf')")


class ReviewRequest(BaseModel):
    """An analyst's correction of one sentence's labels."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,  # every unit /v1/tag-report returns, however long, can be reviewed
        description="the sentence as tagged (normalised text)",
    )
    report_id: str = Field(default="report", min_length=1, max_length=200, description="its report")
    start: int | None = Field(
        default=None, ge=0, le=MAX_OFFSET, description="offset of the sentence in the report text"
    )
    end: int | None = Field(
        default=None, ge=0, le=MAX_OFFSET, description="end offset of the sentence in the report text"
    )
    lang: Literal[LANGS] | None = Field(default=None, description="its language, as tagged")  # type: ignore[valid-type]
    sentiment: SentimentLabel = Field(description="the corrected sentiment")
    themes: list[ThemeLabel] = Field(description="the corrected themes (empty: none)")
    rating: RatingLabel = Field(description="the corrected stated rating ('none' if it states none)")
    model: SentenceTags | None = Field(  # type: ignore[valid-type]
        default=None, description="the model's labels and scores, as /v1/tag answered them"
    )
    review_id: str | None = Field(
        default=None,
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="the client's id of this review; a retry with the same id is stored once",
    )
    reviewer: str | None = Field(default=None, max_length=100, description="who corrected it")

    @model_validator(mode="after")
    def _offsets_make_a_span(self) -> ReviewRequest:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(
                f"end ({self.end}) must be greater than start ({self.start}); send the offsets "
                "/v1/tag-report gave"
            )
        return self


class Review(BaseModel):
    """A stored review: the dataset's label format (id, report_id, text, the label groups) plus its origin."""

    id: str = Field(description="the sentence id (SHA-1 of the normalised text, as in the dataset)")
    review_id: str
    report_id: str
    text: str
    start: int | None
    end: int | None
    lang: Literal[LANGS] | None  # type: ignore[valid-type]
    sentiment: SentimentLabel
    themes: list[ThemeLabel]
    rating: RatingLabel
    model: SentenceTags | None  # type: ignore[valid-type]
    reviewer: str | None
    reviewed_at: str = Field(description="UTC time, ISO 8601")


class ReviewList(BaseModel):
    count: int
    reviews: list[Review]
