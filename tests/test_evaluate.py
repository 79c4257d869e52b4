"""`fintag evaluate`: the splits next to the baseline, the report sentences outside the corpus, and the rating
probe held out of every split."""

from __future__ import annotations

import json
import shutil

import pytest
from fintag.data.build import SPLITS, load_split
from fintag.data.fsutil import read_jsonl
from fintag.data.taxonomy import RATING
from fintag.train.config import EvalConfig
from fintag.train.evaluate import evaluate
from fintag.train.outside import DEFAULT_OUTSIDE, OutsideError, load_outside, resolve_outside
from fintag.train.probe import DEFAULT_PROBE, PROBE_KINDS, ProbeError, load_probe, resolve_probe, score_probe


def test_the_rating_probe_is_outside_every_split_and_covers_each_kind(small_dataset):
    probe = load_probe(DEFAULT_PROBE)
    in_splits = {r["text"] for split in SPLITS for r in load_split(small_dataset, split)}
    assert [r["text"] for r in probe if r["text"] in in_splits] == []
    assert len({r["text"] for r in probe}) == len(probe)
    kinds = {r["kind"] for r in probe}
    assert kinds == set(PROBE_KINDS)
    # Every level a report can state appears, and so does `none` (definitions must not read as ratings).
    assert {r["rating"] for r in probe} == set(RATING.labels)


def test_score_probe_counts_hits_per_kind_and_lists_the_misses():
    records = [
        {"text": "买入:预期未来6个月涨幅15%以上", "rating": "none", "kind": "definition"},
        {"text": "维持“买入”评级", "rating": "buy", "kind": "stated"},
        {"text": "评级由买入下调为增持", "rating": "outperform", "kind": "change"},
    ]
    scored = score_probe(records, ["buy", "buy", "outperform"])
    assert (scored["correct"], scored["n"]) == (2, 3)
    assert scored["by_kind"] == {
        "definition": {"correct": 0, "n": 1},
        "stated": {"correct": 1, "n": 1},
        "change": {"correct": 1, "n": 1},
    }
    assert scored["wrong"] == [
        {"text": records[0]["text"], "kind": "definition", "gold": "none", "predicted": "buy"}
    ]
    with pytest.raises(ValueError, match="2 predictions for 3"):
        score_probe(records, ["buy", "buy"])


def test_a_bad_probe_is_refused_with_the_line_and_the_fix(tmp_path):
    bad = tmp_path / "probe.jsonl"
    lines = [
        {"text": "维持“买入”评级", "rating": "buy", "kind": "stated"},
        {"text": "下调至“持有”", "rating": "hold", "kind": "change"},
    ]
    bad.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    with pytest.raises(ProbeError, match=r"probe\.jsonl:2: rating 'hold' is not one of buy"):
        load_probe(bad)
    # A blank line does not shift the line named; a file saved in GBK is named as not UTF-8, not a traceback.
    first = json.dumps(lines[0], ensure_ascii=False)
    bad.write_text("\n" + first + '\n{"text": "维持\n', encoding="utf-8")
    with pytest.raises(ProbeError, match=r"probe\.jsonl:3: not valid JSON .*--probe none"):
        load_probe(bad)
    bad.write_bytes(json.dumps(lines[0], ensure_ascii=False).encode("gbk"))
    with pytest.raises(ProbeError, match=r"probe\.jsonl:0: cannot read the file .*UTF-8 JSONL"):
        load_probe(bad)
    with pytest.raises(ProbeError, match="--probe none"):
        resolve_probe(str(tmp_path / "missing.jsonl"))
    assert resolve_probe("none") is None
    assert resolve_probe("") == DEFAULT_PROBE


def test_evaluate_scores_the_probe_through_the_taggers_path(tmp_path, tiny_checkpoint_dir, mini_dataset):
    from fintag.serve.tagger import Tagger

    out = tmp_path / "eval"
    cfg = EvalConfig(model=str(tiny_checkpoint_dir), dataset_dir=str(mini_dataset), output_dir=str(out))
    results = evaluate(cfg)
    probe = read_jsonl(DEFAULT_PROBE)
    tagged = Tagger.load(tiny_checkpoint_dir).tag([r["text"] for r in probe])
    expected = sum(t["rating"]["label"] == r["rating"] for t, r in zip(tagged, probe))
    assert results["probe"]["model"]["n"] == len(probe)
    assert results["probe"]["model"]["correct"] == expected
    assert len(results["probe"]["model"]["wrong"]) == len(probe) - expected
    # The baseline is scored on the same sentences (it rates at least the definitions `none`).
    assert 0 < results["probe"]["baseline"]["correct"] <= len(probe)
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["results"]
    assert set(saved) == {"validation", "test", "outside", "probe"}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## rating probe" in report and f"| all | {len(probe)} | {expected} |" in report

    skipped = evaluate(EvalConfig(**{**vars(cfg), "probe": "none", "splits": "validation"}))
    assert set(skipped) == {"validation", "outside"}


def test_the_evaluate_command_prints_each_split_then_the_probe(
    tmp_path, tiny_checkpoint_dir, mini_dataset, capsys, caplog
):
    from fintag.cli.main import main

    argv = ["evaluate", "--model", str(tiny_checkpoint_dir), "--dataset_dir", str(mini_dataset)]
    assert main([*argv, "--output_dir", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert out.index("| validation |") < out.index("| test |") < out.index("rating probe, correct:")
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))["results"]["probe"]
    m, b = saved["model"], saved["baseline"]
    assert f"| all | {m['n']} | {m['correct']} | {b['correct']} |" in out

    missing = str(tmp_path / "missing.jsonl")
    assert main([*argv, "--output_dir", str(tmp_path / "e2"), "--probe", missing]) == 1
    assert "missing.jsonl does not exist" in caplog.text and "--probe none" in caplog.text
    # A broken probe is refused before the model loads (here there is none to load) or any split runs.
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "维持“买入”评级", "rating": "buy", "kind": "guess"}\n', encoding="utf-8")
    caplog.clear()
    no_model = ["--model", str(tmp_path / "no_model"), "--dataset_dir", str(mini_dataset)]
    assert main(["evaluate", *no_model, "--output_dir", str(tmp_path / "e3"), "--probe", str(broken)]) == 1
    assert "broken.jsonl:1: kind 'guess'" in caplog.text and "no_model" not in caplog.text
    assert not (tmp_path / "e3").exists()


def _dataset(folder, splits=SPLITS):
    folder.mkdir()
    for split in splits:
        (folder / f"{split}.jsonl").write_text("", encoding="utf-8")
    return folder


def test_an_unknown_split_is_a_usage_error_naming_the_splits_the_dataset_has(tmp_path, capsys, caplog):
    from fintag.cli.main import main

    dataset = _dataset(tmp_path / "dataset")
    out = tmp_path / "eval"
    # No model to load: the split is refused first.
    argv = ["evaluate", "--model", str(tmp_path / "no_model"), "--dataset_dir", str(dataset)]
    assert main([*argv, "--output_dir", str(out), "--splits", "validation,tset"]) == 2
    err = capsys.readouterr().err
    assert "--splits names 'tset'" in err and "its splits are train, validation, test" in err
    assert err.startswith("usage: fintag evaluate") and "does not exist" not in err
    assert not out.exists()
    # No dataset at all: the advice is to build one (exit 1), still before the model.
    caplog.clear()
    none = ["--dataset_dir", str(tmp_path / "none"), "--output_dir", str(out)]
    assert main(["evaluate", "--model", str(tmp_path / "no_model"), *none]) == 1
    assert "run `fintag data build` first" in caplog.text and "no_model" not in caplog.text
    with pytest.raises(FileNotFoundError, match="has no split 'train'; its splits are validation, test"):
        evaluate(EvalConfig(dataset_dir=str(_dataset(tmp_path / "no_train", ("validation", "test")))))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--splits", " , "], "--splits takes comma-separated split names"),
        (["--batch_size", "0"], "--batch_size"),
    ],
)
def test_evaluate_refuses_empty_splits_and_a_zero_batch(tmp_path, capsys, args, says):
    from fintag.cli.main import main

    assert main(["evaluate", "--output_dir", str(tmp_path / "eval"), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.startswith("usage: fintag evaluate")
    assert not (tmp_path / "eval").exists()
    assert EvalConfig(splits="test, test,validation").split_names == ["test", "validation"]


def test_the_outside_sentences_are_in_no_split_and_come_from_the_analysts_reports(small_dataset):
    from fintag.data.dedup import near_duplicate_pairs
    from fintag.data.taxonomy import SENTIMENT, THEMES

    outside = load_outside(DEFAULT_OUTSIDE)
    assert len(outside) >= 500 and len({r["text"] for r in outside}) == len(outside)
    dataset = [r["text"] for split in SPLITS for r in load_split(small_dataset, split)]
    assert [r["text"] for r in outside if r["text"] in set(dataset)] == []
    texts = [r["text"] for r in outside] + dataset
    crossing = [(texts[i], texts[j]) for i, j, _ in near_duplicate_pairs(texts) if i < len(outside) <= j]
    assert crossing == []
    reports = DEFAULT_OUTSIDE.parents[2] / "tests" / "reports"
    assert all((reports / r["report"]).is_file() for r in outside)
    assert len({r["report"] for r in outside}) >= 50
    # Every sentiment and theme label, and stated ratings beside none: each group's macro-F1 says something.
    assert {r["sentiment"] for r in outside} == set(SENTIMENT.labels)
    assert {t for r in outside for t in r["themes"]} == set(THEMES.labels)
    assert len({r["rating"] for r in outside}) >= 4


def test_evaluate_scores_the_outside_sentences_like_a_split(tmp_path, tiny_checkpoint_dir, mini_dataset):
    from fintag.serve.tagger import Tagger

    def unit(text, sentiment, themes, rating, lang="zh-Hans", kind="sentence"):
        return {
            "text": text,
            "sentiment": sentiment,
            "themes": themes,
            "rating": rating,
            "lang": lang,
            "kind": kind,
        }

    records = [
        unit("公司维持“买入”评级。", "positive", [], "buy"),
        unit("光模块800G出货量环比下滑。", "negative", ["compute"], "none"),
        unit("信创服务器国产化率持续提升", "positive", ["domestic_substitution"], "none", kind="heading"),
        unit(
            "Pony.ai expanded its robotaxi fleet to 1,000 vehicles.", "positive", ["robotaxi"], "none", "en"
        ),
        unit("资料来源:公司公告", "neutral", [], "none", kind="heading"),
    ]
    path = tmp_path / "outside.jsonl"
    lines = [json.dumps({**r, "report": "x.txt"}, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "eval"
    cfg = EvalConfig(
        model=str(tiny_checkpoint_dir), dataset_dir=str(mini_dataset), output_dir=str(out),
        splits="validation", probe="none", outside=str(path),
    )  # fmt: skip
    results = evaluate(cfg)
    tagged = Tagger.load(tiny_checkpoint_dir).tag([r["text"] for r in records])
    hits = [t["sentiment"]["label"] == r["sentiment"] for t, r in zip(tagged, records)]
    scored = results["outside"]["model"]
    assert scored["all"]["sentiment"]["n"] == len(records)
    assert scored["all"]["sentiment"]["accuracy"] == pytest.approx(sum(hits) / len(records))
    assert {k: v["support"] for k, v in scored["all"]["themes"]["per_class"].items()} == {
        "compute": 1, "domestic_substitution": 1, "robotaxi": 1,
    }  # fmt: skip
    # Sliced by the splitter's kind and the language, not by origin (they are all report sentences).
    assert {k: v["sentiment"]["n"] for k, v in scored.items()} == {
        "all": 5, "kind=sentence": 3, "kind=heading": 2, "lang=zh-Hans": 4, "lang=en": 1,
    }  # fmt: skip
    assert results["outside"]["baseline"]["all"]["rating"]["n"] == len(records)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.index("## validation") < report.index("## outside: report sentences outside the corpus")
    assert "`outside.jsonl`, in no split" in report and (out / "confusion_outside_model.png").is_file()
    assert set(evaluate(EvalConfig(**{**vars(cfg), "outside": "none"}))) == {"validation"}


def test_a_bad_outside_file_is_refused_with_the_line_and_the_fix(tmp_path, mini_dataset, caplog):
    from fintag.cli.main import main

    good = {"text": "算力需求旺盛。", "sentiment": "positive", "themes": ["compute"], "rating": "none",
            "lang": "zh-Hans", "kind": "sentence", "report": "x.txt"}  # fmt: skip
    bad = tmp_path / "outside.jsonl"
    for change, says in (
        ({"themes": ["ai"]}, r"outside\.jsonl:2: themes has unknown label\(s\) \['ai'\]"),
        ({"lang": "fr"}, r"outside\.jsonl:2: lang is 'fr'"),
        ({"kind": "paragraph"}, r"outside\.jsonl:2: kind is 'paragraph'; allowed: \['sentence'"),
        ({"text": " "}, r"outside\.jsonl:2: `text` must be a non-empty string"),
    ):
        lines = [json.dumps(good, ensure_ascii=False), json.dumps({**good, **change}, ensure_ascii=False)]
        bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(OutsideError, match=says):
            load_outside(bad)
    bad.write_text("", encoding="utf-8")
    with pytest.raises(OutsideError, match="holds no sentences; add lines or pass --outside none"):
        load_outside(bad)
    with pytest.raises(OutsideError, match="--outside none"):
        resolve_outside(str(tmp_path / "missing.jsonl"))
    assert resolve_outside("none") is None
    assert resolve_outside("") == DEFAULT_OUTSIDE
    # Through the command: refused before the model loads (there is none here) or any split runs.
    bad.write_text("{not json\n", encoding="utf-8")
    argv = ["evaluate", "--model", str(tmp_path / "no_model"), "--dataset_dir", str(mini_dataset)]
    assert main([*argv, "--output_dir", str(tmp_path / "e"), "--outside", str(bad)]) == 1
    assert "outside.jsonl:1: not valid JSON" in caplog.text and "no_model" not in caplog.text
    assert not (tmp_path / "e").exists()
    # A dataset split of the same name would be overwritten: refused, naming both ways out.
    named = tmp_path / "named"
    shutil.copytree(mini_dataset, named)
    shutil.copy(named / "validation.jsonl", named / "outside.jsonl")
    caplog.clear()
    both = ["--dataset_dir", str(named), "--splits", "outside", "--output_dir", str(tmp_path / "e")]
    assert main(["evaluate", "--model", str(tmp_path / "no_model"), *both]) == 1
    assert "--splits names 'outside'" in caplog.text and "--outside none" in caplog.text
