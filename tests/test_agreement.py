"""Agreement between the gold labels of every split and the second, independent annotation."""

import json

import pytest
from fintag.data.agreement import agreement, measure, render
from fintag.data.build import PROJECT_DATA, SPLITS, load_split
from fintag.data.fsutil import read_jsonl
from fintag.data.taxonomy import TAXONOMY


def _row(sentiment: str, themes: list[str], rating: str = "none", **extra) -> dict:
    return {"sentiment": sentiment, "themes": themes, "rating": rating, **extra}


def _write(path, rows: list[dict]) -> None:
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")


def test_kappa_and_exact_theme_agreement_by_hand():
    first = [_row("positive", ["compute"]), _row("positive", []), _row("negative", []), _row("negative", [])]
    second = [_row("positive", ["compute"]), _row("negative", []), _row("negative", [])]
    second.append(_row("negative", ["robotaxi"]))
    a = agreement(first, second)
    # sentiment: observed 3/4; chance 1/2 * 1/4 + 1/2 * 3/4 = 1/2; kappa (0.75 - 0.5) / 0.5 = 0.5
    assert a.groups["sentiment"] == pytest.approx((0.75, 0.5))
    assert a.groups["themes"][0] == 0.75 and a.groups["themes"][1] is None
    assert a.themes["compute"] == pytest.approx(1.0)
    assert a.themes["robotaxi"] == 0.0  # one annotator never used it: no agreement beyond chance
    assert a.themes["domestic_substitution"] is None  # neither used it: undefined, not 1.0
    assert a.groups["rating"] == (1.0, None)  # one label throughout: kappa undefined
    with pytest.raises(ValueError, match="same rows"):
        agreement(first, second[:3])


def test_before_adjudication_uses_the_first_labels_and_after_the_gold(tmp_path):
    gold = [
        _row("negative", [], id="a", origin="report", split="train"),  # adjudicated: was positive
        _row("neutral", ["compute"], id="b", origin="authored", split="train"),
        _row("positive", [], id="c", origin="authored", split="test"),  # disagreement kept
        _row("neutral", [], id="d", origin="report", split="validation"),
        _row("positive", ["robotaxi"], id="e", origin="authored", split="test"),  # adjudicated: themes
    ]
    second = [
        _row("negative", [], id="a"),
        _row("neutral", ["compute"], id="b"),
        _row("negative", [], id="c"),
        _row("neutral", [], id="d"),
        _row("positive", ["robotaxi"], id="e"),
    ]
    _write(tmp_path / "second_pass.jsonl", second)
    decisions = [
        {"id": "a", "group": "sentiment", "first": "positive", "second": "negative", "decision": "negative"},
        {"id": "c", "group": "sentiment", "first": "positive", "second": "negative", "decision": "positive"},
        {"id": "e", "group": "themes", "first": [], "second": ["robotaxi"], "decision": ["robotaxi"]},
    ]
    _write(tmp_path / "adjudication.jsonl", decisions)
    results, changed, revised = measure(gold, tmp_path)
    assert changed == {"all": 2, "train": 1, "test": 1} and revised == {}
    assert results["before adjudication, all"].groups["sentiment"][0] == 0.6
    assert results["before adjudication, all"].groups["themes"][0] == 0.8
    assert results["after adjudication, all"].groups["sentiment"][0] == 0.8
    assert results["after adjudication, all"].groups["themes"][0] == 1.0
    assert results["before adjudication, origin=report"].n == 2
    assert results["before adjudication, origin=report"].groups["sentiment"][0] == 0.5
    assert results["before adjudication, split=train"].n == 2
    assert results["before adjudication, split=train"].groups["sentiment"][0] == 0.5
    assert results["before adjudication, split=validation"].n == 1
    assert results["before adjudication, split=test"].n == 2
    assert results["before adjudication, split=test"].groups["themes"][0] == 0.5
    card = "\n".join(render(results, changed, revised))
    assert "2 of them changing a gold label (1 in train, 1 in test)" in card and "Later," not in card
    # Rows without a split (a caller that does not tag them) give no split slices, only "all" and origins.
    untagged = [{k: v for k, v in r.items() if k != "split"} for r in gold]
    results, changed, revised = measure(untagged, tmp_path)
    assert changed == {"all": 2} and not any("split=" in name for name in results)
    assert "2 of them changing a gold label\n" in "\n".join(render(results, changed, revised))
    assert measure(gold, tmp_path / "missing") is None


def test_revisions_count_apart_and_the_first_label_comes_before_them(tmp_path):
    # d: neutral first, second pass positive, no adjudication; a later rule made it positive.
    # a: adjudicated from positive to negative, then revised to neutral: its first label is still positive.
    gold = [
        _row("neutral", [], id="a", origin="report", split="train"),
        _row("positive", [], id="d", origin="report", split="validation"),
        _row("neutral", [], id="f", origin="authored", split="train"),
    ]
    second = [_row("negative", [], id="a"), _row("positive", [], id="d"), _row("neutral", [], id="f")]
    _write(tmp_path / "second_pass.jsonl", second)
    decisions = [
        {"id": "a", "group": "sentiment", "first": "positive", "second": "negative", "decision": "negative"},
    ]
    _write(tmp_path / "adjudication.jsonl", decisions)
    revisions = [
        {"id": "a", "group": "sentiment", "before": "negative", "decision": "neutral"},
        {"id": "d", "group": "sentiment", "before": "neutral", "decision": "positive"},
    ]
    _write(tmp_path / "revisions.jsonl", revisions)
    results, changed, revised = measure(gold, tmp_path)
    assert changed == {"all": 1, "train": 1}
    assert revised == {"all": 2, "train": 1, "validation": 1}
    # before: a positive vs negative (differ), d neutral vs positive (differ), f agrees -> 1/3
    assert results["before adjudication, all"].groups["sentiment"][0] == pytest.approx(1 / 3)
    # after: gold a neutral vs negative (differ), d and f agree -> 2/3
    assert results["after adjudication, all"].groups["sentiment"][0] == pytest.approx(2 / 3)
    card = "\n".join(render(results, changed, revised))
    assert "Later, 2 gold labels (1 in train, 1 in validation) changed by a rule" in card


def test_the_repositorys_second_pass_covers_every_split_and_its_decisions_are_the_gold(small_dataset):
    """Every sentence of every split has a second label; the adjudication file lists exactly the
    disagreements between the second pass and the first labels, and each decision is the gold label now,
    unless a later revision changed it: then the revision starts from that decision and ends at the gold."""
    folder = PROJECT_DATA / "labels" / "agreement"
    second = {r["id"]: r for r in read_jsonl(folder / "second_pass.jsonl")}
    decisions = read_jsonl(folder / "adjudication.jsonl")
    revisions = {(r["id"], r["group"]): r for r in read_jsonl(folder / "revisions.jsonl")}
    gold = {r["id"]: r for split in SPLITS for r in load_split(small_dataset, split)}
    assert set(second) == set(gold)
    assert {i for i, _ in revisions} <= set(gold)
    by_key = {(d["id"], d["group"]): d for d in decisions}
    for sid, g in gold.items():
        for group in TAXONOMY:
            where = (sid, group.name)
            d, rev = by_key.get(where), revisions.get(where)
            norm = sorted if group.multi_label else (lambda v: v)
            after_adjudication = d["decision"] if d else (rev["before"] if rev else g[group.name])
            first = d["first"] if d else after_adjudication
            assert (norm(first) != norm(second[sid][group.name])) == (d is not None), where
            if d:
                assert d["why"], where
            if rev:
                assert norm(rev["before"]) == norm(after_adjudication) != norm(rev["decision"]), where
                assert rev["rule"] and rev["why"], where
            assert norm(rev["decision"] if rev else after_adjudication) == norm(g[group.name]), where
