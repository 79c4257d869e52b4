"""Reviews back into the data: a reviews file written by the server feeds `fintag data build --reviews` and
a tiny training run; Label Studio tasks out and annotations back in as reviews."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fintag.data.build import BuildConfig, assign_split, load_split
from fintag.data.labelstudio import (
    ExportConfig,
    ImportConfig,
    LabelStudioError,
    export_tasks,
    import_annotations,
    label_config,
)
from fintag.data.normalize import normalize_text
from fintag.data.reader import read_report
from fintag.data.reviews import read_reviews, reviews_for_build
from fintag.data.split import segment
from fintag.data.taxonomy import RATING, TAXONOMY
from fintag.serve.app import create_app
from fintag.serve.cli import main
from fintag.serve.outputs import report_records
from fintag.serve.settings import ServerSettings

from .conftest import CORPUS, LABELS, tiny_train_config

REPORT = "003_79c94fc73134dc31"
NEW_REPORT_SENTENCES = [
    "公司算力服务器订单饱满，我们上调全年盈利预测。",
    "国产GPU加速替代，公司份额有望持续提升。",
    "受需求疲软影响，公司毛利率同比下滑。",
    "维持对公司的买入评级。",
    "自动驾驶出租车在武汉扩大运营范围。",
    "本周市场整体震荡，成交额小幅回落。",
]


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory) -> tuple[Path, Path]:
    """A corpus of report 003 alone and its gold labels (no authored sentences), to keep the build small."""
    root = tmp_path_factory.mktemp("inputs")
    corpus, labels = root / "corpus", root / "labels"
    corpus.mkdir()
    (labels / "authored").mkdir(parents=True)
    shutil.copy(CORPUS / f"{REPORT}.txt", corpus)
    shutil.copy(LABELS / "reports.jsonl", labels)
    return corpus, labels


def _new_report_id_in_train(cfg: BuildConfig) -> str:
    """A report id that the split hash sends to train (so the training run sees its reviewed sentences)."""
    for k in range(100):
        rid = f"analyst_upload_{k}"
        if assign_split({"origin": "report", "id": "x"}, cfg, f"report:{rid}") == "train":
            return rid
    raise AssertionError("no report id lands in train")


def test_reviews_from_the_server_round_trip_into_data_build_and_training(tagger, tmp_path, small_inputs):
    corpus, labels = small_inputs
    base = BuildConfig(corpus_dir=str(corpus), labels_dir=str(labels), output_dir=str(tmp_path / "plain"))
    gold = {json.loads(line)["id"]: json.loads(line) for line in (labels / "reports.jsonl").open()}
    sentences = [s for s in segment(read_report(corpus / f"{REPORT}.txt").text).sentences if s.id in gold]
    target = next(s for s in sentences if gold[s.id]["sentiment"] == "positive" and not gold[s.id]["themes"])
    new_report = _new_report_id_in_train(base)

    reviews = tmp_path / "reviews.jsonl"
    with TestClient(create_app(ServerSettings(reviews_file=str(reviews)), tagger)) as client:

        def post(text: str, report_id: str, **labels: object) -> None:
            body = {"text": text, "report_id": report_id, "model": tagger.tag(text), **labels}
            assert client.post("/v1/reviews", json=body).status_code == 201

        post(target.text, REPORT, sentiment="neutral", themes=["robotaxi"], rating="none", start=target.start)
        # The analyst changes their mind: the latest review of a sentence wins.
        post(target.text, REPORT, sentiment="negative", themes=["compute"], rating="none", start=target.start)
        for text in NEW_REPORT_SENTENCES:
            post(text, new_report, sentiment="positive", themes=["compute"], rating="buy")
    assert len(read_reviews(reviews)) == 2 + len(NEW_REPORT_SENTENCES)

    out = tmp_path / "dataset"
    rc = main(["data", "build", "--corpus_dir", str(corpus), "--labels_dir", str(labels),
               "--output_dir", str(out), "--reviews", str(reviews)])  # fmt: skip
    assert rc == 0
    stats = json.loads((out / "build_stats.json").read_text())
    assert stats["reviews"] == {
        "files": [str(reviews)],
        "sentences": 1 + len(NEW_REPORT_SENTENCES),
        "relabelled": 1,
        "added": len(NEW_REPORT_SENTENCES),
        "added_reports": 1,
    }
    rows = {split: load_split(out, split) for split in ("train", "validation", "test")}
    where = {r["id"]: (split, r) for split, rs in rows.items() for r in rs}
    # The corrected corpus sentence keeps its report and its split (as without reviews); only labels change.
    split, row = where[target.id]
    assert split == assign_split({"origin": "report", "id": target.id}, base)
    assert (row["report_id"], row["sentiment"], row["themes"]) == (REPORT, "negative", ["compute"])
    assert sum(r["id"] == target.id for rs in rows.values() for r in rs) == 1
    # The new report's reviewed sentences are added whole to one split (train, by its id's hash).
    added = [(s, r) for s, r in where.values() if r["report_id"] == new_report]
    assert len(added) == len(NEW_REPORT_SENTENCES)
    assert {s for s, _ in added} == {"train"}
    assert all((r["rating"], r["themes"], r["origin"]) == ("buy", ["compute"], "report") for _, r in added)
    # The HF copy carries them too.
    from datasets import load_from_disk

    assert len(load_from_disk(str(out / "hf"))["train"]) == len(rows["train"])

    # And a tiny training run consumes them: every train row, the reviewed ones included, is seen.
    from fintag.serve.tagger import Tagger
    from fintag.train.loop import train

    cfg = tiny_train_config(out, tmp_path / "run", epochs=1, save_every_steps=1000)
    path = train(cfg)
    summary = json.loads((path / "training_summary.json").read_text())
    assert summary["global_step"] == math.ceil(len(rows["train"]) / cfg.batch_size)
    assert Tagger.load(path).tag(NEW_REPORT_SENTENCES[3])["rating"]["label"] in RATING.labels


def test_a_review_with_an_invalid_label_stops_the_build(tmp_path, small_inputs):
    corpus, labels = small_inputs
    reviews = tmp_path / "reviews.jsonl"
    bad = {"review_id": "r1", "text": "维持买入评级。", "sentiment": "bullish", "themes": [], "rating": "buy"}
    reviews.write_text(json.dumps(bad, ensure_ascii=False) + "\n", encoding="utf-8")
    rc = main(["data", "build", "--corpus_dir", str(corpus), "--labels_dir", str(labels),
               "--output_dir", str(tmp_path / "ds"), "--reviews", str(reviews)])  # fmt: skip
    assert rc == 1
    assert not (tmp_path / "ds" / "train.jsonl").exists()


def _tagged_jsonl(tagger, path: Path) -> list[dict]:
    text = read_report(CORPUS / f"{REPORT}.txt").text
    result = tagger.tag_report(text, REPORT)
    records = report_records(REPORT, "003.txt", "utf-8", result)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return records


def test_label_studio_export_and_import_round_trip(tagger, tmp_path):
    records = _tagged_jsonl(tagger, tmp_path / "tags.jsonl")
    sentences = [r for r in records if r["type"] == "sentence" and r["kind"] != "heading"]
    cfg = ExportConfig(tags=[str(tmp_path / "tags.jsonl")], out=str(tmp_path / "tasks.json"),
                       config_out=str(tmp_path / "config.xml"))  # fmt: skip
    assert export_tasks(cfg) == len(sentences)
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    unc = [t["data"]["uncertainty"] for t in tasks]
    assert unc == sorted(unc, reverse=True)  # most uncertain first
    by_text = {r["text"]: r for r in sentences}
    for task in tasks[:20]:
        model = by_text[task["data"]["text"]]
        result = {r["from_name"]: r["value"]["choices"] for r in task["predictions"][0]["result"]}
        assert result["sentiment"] == [model["sentiment"]["label"]]
        assert result.get("themes", []) == model["themes"]["labels"]
    config = (tmp_path / "config.xml").read_text()
    for g in TAXONOMY:
        assert f'name="{g.name}"' in config and all(f'"{label}"' in config for label in g.labels)
    assert label_config() == config

    # What Label Studio exports after an annotator corrected three tasks (ids and annotations added).
    # The third holds full-width punctuation, which the import normalises.
    changed = next(t for t in tasks[2:] if normalize_text(t["data"]["text"]) != t["data"]["text"])
    picked = [*tasks[:2], changed, *[t for t in tasks[2:] if t is not changed][:2]]
    exported = []
    for k, task in enumerate(picked, 1):
        task = {**task, "id": 100 + k}
        if k <= 3:
            result = [
                {
                    "from_name": "sentiment",
                    "to_name": "text",
                    "type": "choices",
                    "value": {"choices": ["negative"]},
                },
                {
                    "from_name": "themes",
                    "to_name": "text",
                    "type": "choices",
                    "value": {"choices": ["robotaxi"]},
                },
                {"from_name": "rating", "to_name": "text", "type": "choices", "value": {"choices": ["sell"]}},
            ]
            task["annotations"] = [{"id": k, "result": result, "updated_at": f"2026-12-01T0{k}:00:00Z"}]
        exported.append(task)
    (tmp_path / "export.json").write_text(json.dumps(exported, ensure_ascii=False))
    imp = ImportConfig(annotations=str(tmp_path / "export.json"), reviews=str(tmp_path / "reviews.jsonl"))
    assert import_annotations(imp) == {"annotated": 3, "added": 3, "unannotated": 2}
    assert import_annotations(imp)["added"] == 0  # re-importing the same export adds nothing
    reviews = read_reviews(tmp_path / "reviews.jsonl")
    assert [(r["sentiment"], r["themes"], r["rating"]) for r in reviews] == [
        ("negative", ["robotaxi"], "sell")
    ] * 3
    # Reviews hold the normalised text (as the page's reviews do), so ids match the dataset's sentence ids.
    assert [r["text"] for r in reviews] == [normalize_text(t["data"]["text"]) for t in picked[:3]]
    assert [r["id"] for r in reviews] == [t["data"]["sentence_id"] for t in picked[:3]]
    assert all(r["report_id"] == REPORT and r["model"]["sentiment"] for r in reviews)
    assert set(reviews_for_build([str(tmp_path / "reviews.jsonl")])) == {r["id"] for r in reviews}


def test_label_studio_import_refuses_an_unknown_label(tmp_path):
    choice = {
        "from_name": "sentiment",
        "to_name": "text",
        "type": "choices",
        "value": {"choices": ["bullish"]},
    }
    task = {"id": 1, "data": {"text": "维持买入评级。"}, "annotations": [{"id": 1, "result": [choice]}]}
    (tmp_path / "export.json").write_text(json.dumps([task], ensure_ascii=False))
    imp = ImportConfig(annotations=str(tmp_path / "export.json"), reviews=str(tmp_path / "reviews.jsonl"))
    with pytest.raises(LabelStudioError, match=r"task 1: .*bullish"):
        import_annotations(imp)
    assert not (tmp_path / "reviews.jsonl").exists()
