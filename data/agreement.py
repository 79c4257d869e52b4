"""Agreement between the gold labels of every split and a second, independent annotation.

`data/labels/agreement/second_pass.jsonl` holds a second annotator's labels of every sentence of the dataset
(keyed by sentence id, labelled from `LABELS.md` and `GUIDELINES.md` alone, without the gold labels or any
model's output; validation and test in the thirty-second session, train in the thirty-sixth);
`adjudication.jsonl` holds each disagreement with the first label, the second, the decision and why;
`revisions.jsonl` holds gold labels changed later by a rule the guides gained after the second pass (the
thirty-seventh session's Events rule), with the label before, the decision, the rule and why.
Agreement is measured before adjudication (the first labels, as the inter-annotator figure) and after it (the
gold labels of the built dataset, revisions included), over all rows and by split and origin: Cohen's kappa
per single-choice group, per theme (present or not), and the share of sentences whose themes agree exactly.
`fintag data stats` writes it into the card.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintag.data.build import SPLITS
from fintag.data.fsutil import read_jsonl
from fintag.data.taxonomy import ORIGINS, TAXONOMY, THEMES


@dataclass(frozen=True)
class Agreement:
    """Agreement of two labellings of the same `n` sentences."""

    n: int
    # group -> (share of sentences with the same label, Cohen's kappa); themes: exact agreement of the set
    groups: dict[str, tuple[float, float | None]]
    # theme -> Cohen's kappa of its presence
    themes: dict[str, float | None]


def _kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Cohen's kappa, or None where it is undefined (both annotators used one label throughout)."""
    if len(set(a) | set(b)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score  # here, so `fintag data stats --help` stays light

    return float(cohen_kappa_score(a, b))


def _key(value: Any) -> Any:
    """A label comparable across annotators: a theme list as a sorted tuple."""
    return tuple(sorted(value)) if isinstance(value, list) else value


def agreement(first: Sequence[dict[str, Any]], second: Sequence[dict[str, Any]]) -> Agreement:
    """Agreement of two labellings, aligned row by row (each row holds every group of the taxonomy)."""
    if len(first) != len(second) or not first:
        raise ValueError(f"need two labellings of the same rows, got {len(first)} and {len(second)} rows")
    groups: dict[str, tuple[float, float | None]] = {}
    for g in TAXONOMY:
        a = [_key(r[g.name]) for r in first]
        b = [_key(r[g.name]) for r in second]
        same = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
        groups[g.name] = (same, None if g.multi_label else _kappa(a, b))
    themes = {
        t: _kappa([t in r[THEMES.name] for r in first], [t in r[THEMES.name] for r in second])
        for t in THEMES.labels
    }
    return Agreement(n=len(first), groups=groups, themes=themes)


def measure(
    gold: Sequence[dict[str, Any]], agreement_dir: Path
) -> tuple[dict[str, Agreement], Counter[str], Counter[str]] | None:
    """Agreement of the second pass with the first labels (before adjudication, by split and origin too) and
    with `gold` (after), over the gold rows the second pass labelled, and how many gold labels the
    adjudication and the later revisions changed (two counters: in all, and by split where rows carry one);
    None when the folder holds no second pass or it labels none of `gold`."""
    second_path = agreement_dir / "second_pass.jsonl"
    if not second_path.exists():
        return None
    second = {r["id"]: r for r in read_jsonl(second_path)}
    adjudication_path = agreement_dir / "adjudication.jsonl"
    decisions = read_jsonl(adjudication_path) if adjudication_path.exists() else []
    revisions_path = agreement_dir / "revisions.jsonl"
    revisions = read_jsonl(revisions_path) if revisions_path.exists() else []
    # The first label: the adjudication's where it decided the group, else the label a revision replaced.
    firsts = {(r["id"], r["group"]): r["before"] for r in revisions}
    firsts |= {(r["id"], r["group"]): r["first"] for r in decisions}
    rows = [r for r in gold if r["id"] in second]
    if not rows:
        return None
    before = [{g.name: firsts.get((r["id"], g.name), r[g.name]) for g in TAXONOMY} for r in rows]
    results: dict[str, Agreement] = {}
    # Slices besides "all": each split (rows tagged `split` by the caller) and each origin that rows hold.
    slices = [("all", list(range(len(rows))))]
    slices += [
        (f"{key}={value}", [i for i, r in enumerate(rows) if r.get(key) == value])
        for key, values in (("split", SPLITS), ("origin", ORIGINS))
        for value in values
    ]
    for name, idx in slices:
        if idx:
            results[f"before adjudication, {name}"] = agreement(
                [before[i] for i in idx], [second[rows[i]["id"]] for i in idx]
            )
    results["after adjudication, all"] = agreement(rows, [second[r["id"]] for r in rows])
    split_of = {r["id"]: r.get("split") for r in rows}

    def count(changes: Sequence[dict[str, Any]], before: str) -> Counter[str]:
        counter: Counter[str] = Counter()
        for d in changes:
            if _key(d["decision"]) != _key(d[before]):
                counter["all"] += 1
                if split_of.get(d["id"]) is not None:
                    counter[split_of[d["id"]]] += 1
        return counter

    return results, count(decisions, "first"), count(revisions, "before")


def _by_split(counter: Counter[str]) -> str:
    by_split = ", ".join(f"{counter[s]} in {s}" for s in SPLITS if counter[s])
    return f" ({by_split})" if by_split else ""


def render(results: dict[str, Agreement], changed: Counter[str], revised: Counter[str]) -> list[str]:
    """The card's agreement section."""

    def k(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    head = ["rows", "n"]
    head += [f"{g.name} {'exact' if g.multi_label else 'agree / kappa'}" for g in TAXONOMY]
    head += [f"kappa {t}" for t in THEMES.labels]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, a in results.items():
        cells = [name, str(a.n)]
        for g in TAXONOMY:
            same, kappa = a.groups[g.name]
            cells.append(f"{same:.3f}" if g.multi_label else f"{same:.3f} / {k(kappa)}")
        cells += [k(a.themes[t]) for t in THEMES.labels]
        lines.append("| " + " | ".join(cells) + " |")
    revised_line = (
        [
            f"Later, {revised['all']} gold labels{_by_split(revised)} changed by a rule the guides gained",
            "after the second pass, each where two independent checks gave the same new label",
            "(`data/labels/agreement/revisions.jsonl`); the after-adjudication row includes them.",
        ]
        if revised["all"]
        else []
    )
    return [
        "## Agreement",
        "",
        "A second annotator labelled every sentence from `LABELS.md` and `GUIDELINES.md` alone",
        "(`data/labels/agreement/second_pass.jsonl`); each disagreement was decided against the guides by",
        "adjudicators who did not know which label was the first (where the guides leave it open, the first",
        f"stands), {changed['all']} of them changing a gold label{_by_split(changed)}",
        "(`data/labels/agreement/adjudication.jsonl`, with the reason for each; how: `docs/label_audit.md`).",
        *revised_line,
        "",
        *lines,
    ]
