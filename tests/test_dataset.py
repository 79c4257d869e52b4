import json
import os
import re
import stat

import pytest
from fintag.data.build import SPLITS, BuildConfig, BuildError, build, load_split
from fintag.data.dedup import RESTATE_CANDIDATE, jaccard, near_duplicate_pairs, restatements
from fintag.data.stats import TARGETS, compute_stats, unmet_targets
from fintag.data.taxonomy import TAXONOMY
from fintag.data.validate import validate_file

from .conftest import LABELS


def test_build_meets_every_target(small_dataset):
    stats = compute_stats(str(small_dataset))
    assert unmet_targets(stats["all"]) == []
    assert stats["all"]["total"] >= TARGETS["total"]
    for split in ("validation", "test"):
        assert stats[split]["origin/report"] > 0 and stats[split]["origin/authored"] > 0


def test_no_near_duplicates_anywhere_so_none_straddle_splits(small_dataset):
    rows = [(s, r["text"]) for s in SPLITS for r in load_split(small_dataset, s)]
    ids = [r for _, r in rows]
    assert len(set(ids)) == len(ids)
    pairs = near_duplicate_pairs([t for _, t in rows])
    assert pairs == []


def test_authored_training_files_never_reach_eval_splits(small_dataset):
    for split in ("validation", "test"):
        for r in load_split(small_dataset, split):
            if r["origin"] == "authored":
                assert r["report_id"].startswith("authored/heldout")
    assert all(not r["report_id"].startswith("authored/heldout") for r in load_split(small_dataset, "train"))


def test_records_carry_provenance_and_original_offsets(small_dataset):
    from .conftest import CORPUS

    texts = {p.stem: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.txt")}
    for r in load_split(small_dataset, "test"):
        assert r["lang"] in ("zh-Hans", "zh-Hant", "en")
        if r["origin"] == "report":
            assert texts[r["report_id"]][r["start"] : r["end"]] == r["text_original"]


def test_hf_dataset_features_come_from_taxonomy(small_dataset):
    from datasets import load_from_disk

    dd = load_from_disk(str(small_dataset / "hf"))
    assert set(dd) == set(SPLITS)
    for g in TAXONOMY:
        feat = dd["train"].features[g.name]
        names = feat.feature.names if g.multi_label else feat.names
        assert tuple(names) == g.labels
    first = dd["train"][0]
    row = load_split(small_dataset, "train")[0]
    assert dd["train"].features["sentiment"].int2str(first["sentiment"]) == row["sentiment"]


def test_near_duplicate_detection():
    a = "英伟达表示其中国区收入同比下降24%,主要受H20出口管制影响。"
    b = "英伟达表示其中国区收入同比下降25%,主要受H20出口管制影响。"
    c = "小马智行、文远知行已在港交所成功上市。"
    assert jaccard(a, b) > 0.8
    assert [(i, j) for i, j, _ in near_duplicate_pairs([a, c, b])] == [(0, 2)]
    # The same text with the same numbers restates; other numbers (24% and 25%) do not.
    assert restatements([a, c, b, "综上," + a, a]) == {3: 0, 4: 0}


@pytest.mark.parametrize(
    ("earlier", "later", "restates"),
    [
        ("公司营收同比增长30%,毛利率提升至45%。", "综上,公司营收同比增长30%,毛利率提升至45%", True),
        ("推理成本的下降只会增加AI算力的需求,均印证了这一点。", "推理成本的下降只会增加AI算力的需求,均初步印证了这一点。", True),  # noqa: E501
        # Near-duplicates that state something else: a negation, another period or direction, other figures.
        ("我们认为公司本季度业绩符合市场预期,收入同比增长45%。", "我们认为公司本季度业绩不符合市场预期,收入同比增长45%。", False),  # noqa: E501
        ("公司一季度营收同比增长30%,毛利率持续提升。", "公司二季度营收同比增长30%,毛利率持续提升。", False),
        ("海外云厂商资本开支持续增长,带动光模块需求,维持买入评级。", "海外云厂商资本开支持续下滑,带动光模块需求,维持买入评级。", False),  # noqa: E501
        ("We expect revenue to grow 30% next year on AI demand.", "We do not expect revenue to grow 30% next year on AI demand.", False),  # noqa: E501
        ("公司营收同比增长30%,毛利率提升至45%。", "公司营收同比增长30.0%,毛利率提升至45%。", False),
        # One phrase put elsewhere restates.
        ("公司股价近三个月上涨112%,当前市值对应2026年PE约150倍。", "近三个月公司股价上涨112%,当前市值对应2026年PE约150倍。", True),  # noqa: E501
    ],
)  # fmt: skip
def test_a_restatement_adds_or_leaves_out_words_and_changes_none(earlier, later, restates):
    assert jaccard(earlier, later) > 0.8  # all near-duplicates: the dataset's rule alone would merge them
    assert restatements([earlier, later]) == ({1: 0} if restates else {})


def test_two_phrases_swapped_or_a_negation_moved_is_no_restatement():
    """Anagrams of one another, each a candidate (bigram similarity over 0.5): only one phrase moved within
    its clause, without a negation, restates."""
    swapped = [
        "国产光模块厂商的全球份额超过海外厂商,毛利率也更高。",
        "海外光模块厂商的全球份额超过国产厂商,毛利率也更高。",
    ]
    negation = ["公司预计明年不会继续扩产,资本开支将回落。", "公司预计明年继续扩产,不会资本开支将回落。"]
    moved = ["在AI需求带动下公司光模块出货量持续提升。", "公司光模块出货量在AI需求带动下持续提升。"]
    # Put into another clause, a phrase changes what it says ("明年" of the revenue, then of the profit).
    across = ["预计明年营收同比增长,利润同比下降。", "预计营收同比增长,明年利润同比下降。"]
    english = ["Revenue rose in Q3 while margins fell.", "Revenue rose while margins fell in Q3."]
    for pair in (swapped, negation, moved, across, english):
        assert sorted(pair[0]) == sorted(pair[1]) and jaccard(*pair) > RESTATE_CANDIDATE
    assert restatements(swapped) == {} and restatements(negation) == {}
    assert restatements(across) == {} and restatements(english) == {}
    assert restatements(moved) == {1: 0}


def test_a_prefix_restates_a_short_sentence_and_a_new_clause_does_not():
    """Candidates are looser than the dataset's rule (a prefix weighs more in a short sentence), so the
    amount added is bounded instead: a rating clause after a sentence says something more."""
    assert restatements(["公司营收同比增长30%。", "综上,公司营收同比增长30%"]) == {1: 0}
    assert restatements(["光刻胶国产替代进入验证兑现期", "综上，光刻胶国产替代进入验证兑现期。"]) == {1: 0}
    said = "公司营收同比增长30%,毛利率提升至45%"
    assert restatements([said + "。", said + ",维持行业强于大市评级。"]) == {}


def test_restatements_of_thousands_of_like_lines_stay_quick():
    """6,000 copies of one line, and 6,000 lines alike but for a figure: each copy restates the first, no
    line with another figure restates any (the work per line is bounded: MAX_CHECKS)."""
    import time

    start = time.perf_counter()
    assert restatements(["公司营收同比增长18%,维持买入评级。"] * 6000) == {k: 0 for k in range(1, 6000)}
    assert restatements([f"公司营收同比增长{k}%,维持买入评级。" for k in range(6000)]) == {}
    assert time.perf_counter() - start < 30  # about 1 s on a 2-core EPYC


def test_near_duplicates_are_found_alike_in_blocks_of_rows(monkeypatch):
    """The product is computed ROW_BLOCK rows at a time (memory bounded for huge reports): blocks of 3 find
    the pairs that one block finds, across block edges too."""
    from fintag.data import dedup

    base = [
        "公司三季度实现营收23.8亿美元,同比增长18.2%,超出市场预期。",
        "国产算力份额持续提升,寒武纪出货量大增。",
    ]
    texts = [base[k % 2] + "。" * (k // 4) for k in range(11)] + ["无关的一句话,讲的是消费电子需求疲软。"]
    whole = near_duplicate_pairs(texts)
    monkeypatch.setattr(dedup, "ROW_BLOCK", 3)
    assert near_duplicate_pairs(texts) == whole
    assert len(whole) == 2 * (6 * 5 // 2) - 5  # pairs within each of the two groups (6 and 5 texts)


def test_unlabeled_report_sentence_fails_the_build(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "new.txt").write_text("这是一个从未标注过的新句子,算力需求很强。", encoding="utf-8")
    labels = tmp_path / "labels"
    (labels / "authored").mkdir(parents=True)
    cfg = BuildConfig(corpus_dir=str(corpus), labels_dir=str(labels), output_dir=str(tmp_path / "out"))
    with pytest.raises(BuildError, match="no gold label"):
        build(cfg)
    pending = tmp_path / "out" / "pending_labels.jsonl"
    assert "从未标注过" in pending.read_text(encoding="utf-8")
    # A later build that succeeds removes the list: it no longer describes the dataset.
    build(BuildConfig(**{**vars(cfg), "allow_unlabeled": True}))
    assert not pending.exists()


def test_validate_names_file_line_and_bad_value(tmp_path):
    good = {
        "text": "算力需求旺盛。",
        "sentiment": "positive",
        "themes": ["compute"],
        "rating": "none",
        "lang": "zh-Hans",
    }
    lines = [
        json.dumps(good, ensure_ascii=False),
        json.dumps({**good, "text": "另一句。", "sentiment": "bullish"}, ensure_ascii=False),
        "{not json",
        json.dumps({**good, "text": "第三句。", "themes": ["compute", "crypto"]}, ensure_ascii=False),
        json.dumps({**good, "text": "第四句。", "rating": "strong buy", "lang": "fr"}, ensure_ascii=False),
        json.dumps(good, ensure_ascii=False),
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = [str(p) for p in validate_file(path)]
    assert any(p.startswith(f"{path}:2:") and "'bullish'" in p for p in problems)
    assert any(p.startswith(f"{path}:3:") and "not valid JSON" in p for p in problems)
    assert any(p.startswith(f"{path}:4:") and "crypto" in p for p in problems)
    assert any(p.startswith(f"{path}:5:") and "strong buy" in p for p in problems)
    assert any(p.startswith(f"{path}:5:") and "'fr'" in p for p in problems)
    assert any(p.startswith(f"{path}:6:") and "duplicate of line 1" in p for p in problems)
    assert not any(p.startswith(f"{path}:1:") for p in problems)


def test_gold_file_id_must_match_text(tmp_path):
    path = tmp_path / "reports_x.jsonl"
    row = {
        "id": "0000000000000000",
        "text": "算力需求旺盛。",
        "sentiment": "positive",
        "themes": [],
        "rating": "none",
    }
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    (problem,) = validate_file(path)
    assert "does not match the text" in problem.message


def test_project_label_files_are_valid():
    files = sorted(LABELS.glob("reports*.jsonl")) + sorted((LABELS / "authored").glob("*.jsonl"))
    assert files
    for f in files:
        assert validate_file(f) == [], f


def test_authored_sentences_have_no_near_duplicates_between_them():
    rows = [
        json.loads(line)["text"]
        for f in sorted((LABELS / "authored").glob("*.jsonl"))
        for line in f.open(encoding="utf-8")
    ]
    pairs = near_duplicate_pairs(rows)
    # Measured, not assumed: the build drops these; this bounds how many slipped in while writing.
    assert len(pairs) <= 0.01 * len(rows)


DOWNGRADE = re.compile(
    r"下调|调降|调低|下修|降至|降到|降为|downgrad|\bcut\b|\btrim\b|\blower\b", re.IGNORECASE
)
UPGRADE = re.compile(r"上调|调高|调升|上修|upgrad", re.IGNORECASE)


def test_training_split_holds_rating_changes_whose_verb_and_level_point_different_ways(small_dataset):
    """Every default before the twenty-fourth session read "由买入下调为增持" as underperform: the training
    downgrades mostly ended at neutral or below. The split must keep downgrades that end at a positive level
    and upgrades that end at underperform, in Chinese and English (`rating_change_levels.jsonl`)."""
    train = load_split(small_dataset, "train")
    down_to_positive = [
        r for r in train if r["rating"] in ("buy", "outperform") and DOWNGRADE.search(r["text"])
    ]
    up_to_negative = [r for r in train if r["rating"] == "underperform" and UPGRADE.search(r["text"])]
    assert len(down_to_positive) >= 25 and len(up_to_negative) >= 6
    assert {r["lang"] for r in down_to_positive} >= {"zh-Hans", "zh-Hant", "en"}
    assert all(
        r["sentiment"] == "negative"
        for r in down_to_positive
        if "下调" in r["text"] and "上调" not in r["text"]
    )


# ---------------------------------------------------------------- flag checks and output permissions


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("near_dup_threshold", "-2"),  # every pair "similar": all but one sentence dropped
        ("near_dup_threshold", "0"),
        ("near_dup_threshold", "1.5"),
        ("report_train_share", "1.5"),
        ("report_train_share", "-0.1"),
        ("report_train_share", "nan"),
    ],
)
def test_data_build_refuses_an_out_of_range_value_before_writing(tmp_path, capsys, flag, value):
    from fintag.cli.main import main

    out = tmp_path / "ds"
    assert main(["data", "build", "--output_dir", str(out), f"--{flag}", value]) == 2
    err = capsys.readouterr().err
    assert f"--{flag} " in err and err.startswith("usage: fintag data build") and "Traceback" not in err
    assert not out.exists()


def test_the_ends_of_the_build_ranges_are_accepted():
    BuildConfig(report_train_share=0.0, near_dup_threshold=1.0)
    BuildConfig(report_train_share=1.0, near_dup_threshold=1e-6)


def test_a_missing_split_names_the_splits_the_dataset_has(tmp_path):
    from fintag.data.build import available_splits

    for name in ("test", "train", "validation", "pending_labels", "extra"):
        (tmp_path / f"{name}.jsonl").write_text("", encoding="utf-8")
    assert available_splits(tmp_path) == ["train", "validation", "test", "extra"]
    with pytest.raises(
        FileNotFoundError, match="has no split 'tset'; its splits are train, validation, test"
    ):
        load_split(tmp_path, "tset")
    with pytest.raises(FileNotFoundError, match="does not exist; run `fintag data build` first"):
        load_split(tmp_path / "none", "train")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_outputs_get_the_permissions_of_the_umask_not_private_ones(tmp_path, umask):
    """mkdtemp (0700) and mkstemp (0600) must not leak into outputs another user (a service) reads."""
    from fintag.data.fsutil import atomic_directory, current_umask, write_json

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "plain.txt").write_text("x", encoding="utf-8")
            write_json(tmp / "atomic.json", {"a": 1})
            # A writer with a private temporary file of its own (safetensors makes model.safetensors 0600).
            (tmp / "sub").mkdir(mode=0o700)
            os.close(os.open(tmp / "sub" / "private.bin", os.O_CREAT | os.O_WRONLY, 0o600))
            os.close(os.open(tmp / "tool.sh", os.O_CREAT | os.O_WRONLY, 0o700))
        write_json(tmp_path / "single.json", {"b": 2})
    finally:
        os.umask(old)
    out = tmp_path / "out"
    for folder in (out, out / "sub"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask, folder
    for path in (
        out / "plain.txt",
        out / "atomic.json",
        out / "sub" / "private.bin",
        tmp_path / "single.json",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert stat.S_IMODE((out / "tool.sh").stat().st_mode) == 0o700 | (0o666 & ~umask)  # keeps its x bit
    # Replacing a file keeps the permissions its owner chose.
    (tmp_path / "single.json").chmod(0o600)
    write_json(tmp_path / "single.json", {"b": 3})
    assert stat.S_IMODE((tmp_path / "single.json").stat().st_mode) == 0o600
