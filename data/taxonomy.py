"""The label taxonomy: the one place that names the label groups and their labels.

The data card, the model config and the HTTP schema are all generated from `TAXONOMY`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelGroup:
    """One label group: a single-choice group (exactly one label) or a multi-label group (zero or more)."""

    name: str
    labels: tuple[str, ...]
    multi_label: bool
    description: str
    default: str | None = None  # the label given when nothing else applies (single-choice groups)
    # Single-choice groups only: a label other than `default` is given only when its probability reaches
    # a threshold tuned on validation (stored with the checkpoint); below it the sentence gets `default`.
    abstains: bool = False

    def index(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise ValueError(
                f"{label!r} is not a {self.name} label; expected one of {', '.join(self.labels)}"
            ) from None


SENTIMENT = LabelGroup(
    name="sentiment",
    labels=("positive", "neutral", "negative"),
    multi_label=False,
    description="stance of the sentence towards its subject",
    default="neutral",
)
THEMES = LabelGroup(
    name="themes",
    labels=("compute", "domestic_substitution", "robotaxi"),
    multi_label=True,
    description="investment themes the sentence is about (zero or more)",
)
RATING = LabelGroup(
    name="rating",
    labels=("buy", "outperform", "neutral", "underperform", "sell", "none"),
    multi_label=False,
    description="formal investment rating stated by the sentence",
    default="none",
    abstains=True,
)

TAXONOMY: tuple[LabelGroup, ...] = (SENTIMENT, THEMES, RATING)
GROUPS: dict[str, LabelGroup] = {g.name: g for g in TAXONOMY}

# Words that name a rating level in broker reports (Chinese as the normaliser leaves it, simplified; English):
# the data build reads a sentence that opens with one as the rating scale's definition
# (`fintag.data.split`), and the fast tier's distillation swaps them (`fintag.train.augment`).
RATING_WORDS_ZH: tuple[str, ...] = (
    "强烈推荐", "谨慎推荐", "推荐", "买入", "增持", "持有", "中性", "减持", "卖出", "回避",
    "优于大市", "弱于大市", "同步大市", "跑赢行业", "跑输行业", "跑赢大市", "跑输大市", "看好", "看淡",
    # other mainland scales (data/GUIDELINES.md): industry 超配/标配/低配, 强推 (强烈推荐), 审慎/谨慎增持
    "超配", "标配", "低配", "强推", "审慎增持", "谨慎增持",
)  # fmt: skip
RATING_WORDS_EN: tuple[str, ...] = (
    "Buy", "Outperform", "Overweight", "Neutral", "Hold", "Underperform", "Underweight", "Sell",
    "Accumulate", "Reduce", "Equal-weight", "Market Weight", "Market Perform", "Sector Perform", "Avoid",
    "Sector Outperform", "Sector Underperform",
)  # fmt: skip
# Taiwan's and Hong Kong's levels as the normaliser leaves them (simplified; data/GUIDELINES.md): the
# summary reads them as rating words (`fintag.serve.summary`); the splitter and the distillation do not.
RATING_WORDS_TW_HK: tuple[str, ...] = (
    "强力买进", "买进", "增加持股", "优于大盘", "加码", "中立", "区间操作", "减码", "减少持股", "劣于大盘",
)  # fmt: skip
# Words that are something else more often than a rating (看好 / 标配 / 强推 / 超配 are verbs, car
# features and fund positions; "Reduce" / "Avoid" are verbs) and the levels added after the fast tier's
# recipe was chosen: the distillation's rating-word swaps leave these alone.
RATING_WORDS_NOT_SWAPPED: frozenset[str] = frozenset(
    {"看好", "看淡", "超配", "标配", "低配", "强推", "审慎增持", "谨慎增持"}
    | {"Accumulate", "Reduce", "Equal-weight", "Market Weight", "Market Perform", "Sector Perform", "Avoid"}
    | {"Sector Outperform", "Sector Underperform"}
)

# How a report names its previous rating ("上次评级:买入", "原评级", "Previous rating: Hold"): a regular
# expression, read by the splitter's header fields and the summary's choice of the stated rating.
PREVIOUS_RATING_WORDS = r"(?:前次|上次|此前|之前|原|上期)(?:投资)?评[级等]|(?:Previous|Prior)\s+rating"

ORIGINS = ("report", "authored")
LANGS = ("zh-Hans", "zh-Hant", "en")


def check_labels(record: dict) -> list[str]:
    """Return one message per label problem in `record` (empty when the labels are valid)."""
    problems: list[str] = []
    for group in TAXONOMY:
        if group.name not in record:
            problems.append(f"missing field {group.name!r}")
            continue
        value = record[group.name]
        if group.multi_label:
            if not isinstance(value, list):
                problems.append(f"{group.name} must be a list, got {value!r}")
                continue
            bad = [v for v in value if v not in group.labels]
            if bad:
                problems.append(f"{group.name} has unknown label(s) {bad!r}; allowed: {list(group.labels)}")
            if len(set(value)) != len(value):
                problems.append(f"{group.name} repeats a label: {value!r}")
        elif value not in group.labels:
            problems.append(f"{group.name} is {value!r}; allowed: {list(group.labels)}")
    return problems
