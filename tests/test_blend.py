"""The n-gram blend: the TF-IDF baseline's heads stored without pickle, mixed with the encoder's
probabilities, weights chosen on validation, and the same labels from every way of loading a checkpoint."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from fintag.data.build import load_split
from fintag.data.taxonomy import TAXONOMY
from fintag.model.labels import LABEL_SPACE, THRESHOLDS_KEY, decode_records
from fintag.model.ngram import BLEND_KEY, NGRAM_JSON, NGRAM_WEIGHTS, Blend, NgramHeads
from fintag.train.baseline import TfidfBaseline
from fintag.train.blend import choose_weights
from fintag.train.metrics import middle_of_ties

from tests.conftest import tiny_train_config

TEXTS = [
    "国产算力芯片需求旺盛,维持买入评级。",
    "公司 Robotaxi 车队规模扩大至 500 台,亏损收窄。",
    "受价格战影响,毛利率同比下降 3.2pct。",
    "We maintain Outperform on the stock.",
]


@pytest.fixture(scope="module")
def fitted(mini_dataset):
    baseline = TfidfBaseline().fit(load_split(mini_dataset, "train"))
    return baseline, NgramHeads.from_pipelines(baseline.models)


def test_ngram_heads_give_the_baselines_probabilities_and_survive_a_save(tmp_path, fitted, mini_dataset):
    baseline, heads = fitted
    texts = [r["text"] for r in load_split(mini_dataset, "test")] + TEXTS
    _, want = baseline.predict(texts)
    got = heads.probabilities(texts)
    for g in TAXONOMY:
        np.testing.assert_allclose(got[g.name], want[g.name], atol=1e-6)
    heads.save(tmp_path)
    assert not list(tmp_path.glob("*.pkl")) and json.loads((tmp_path / NGRAM_JSON).read_text())["vocabulary"]
    again = NgramHeads.load(tmp_path / NGRAM_JSON, tmp_path / NGRAM_WEIGHTS).probabilities(texts)
    for g in TAXONOMY:
        np.testing.assert_allclose(again[g.name], want[g.name], atol=1e-6)


def test_blended_logits_decode_to_the_weighted_mean_of_probabilities():
    torch.manual_seed(0)
    logits = torch.randn(5, LABEL_SPACE.size) * 3
    mine = {k: v.numpy() for k, v in LABEL_SPACE.probabilities(logits).items()}
    rng = np.random.default_rng(1)
    other = {g.name: rng.random((5, len(g.labels))) for g in LABEL_SPACE.groups}
    for g in LABEL_SPACE.groups:
        if not g.multi_label:
            other[g.name] /= other[g.name].sum(1, keepdims=True)
    for w in (0.0, 0.3, 1.0):
        mixed = LABEL_SPACE.probabilities(LABEL_SPACE.blend(logits, other, {g.name: w for g in TAXONOMY}))
        for g in LABEL_SPACE.groups:
            want = w * mine[g.name] + (1 - w) * other[g.name]
            np.testing.assert_allclose(mixed[g.name].numpy(), want, atol=1e-5)
    # Weight 1: the encoder's own labels.
    alone = LABEL_SPACE.blend(logits, other, {g.name: 1.0 for g in TAXONOMY})
    assert decode_records(alone)[0] == decode_records(logits)[0]


def _logits_for(records, right: bool) -> torch.Tensor:
    """Confident logits that give every gold label (`right`), or else one wrong label per single-choice
    group (the next one) and every theme flipped."""
    out = torch.full((len(records), LABEL_SPACE.size), -8.0)
    for i, r in enumerate(records):
        for g, s in zip(LABEL_SPACE.groups, LABEL_SPACE.slices().values()):
            if g.multi_label:
                for k, label in enumerate(g.labels):
                    if (label in r[g.name]) == right:
                        out[i, s.start + k] = 8.0
            else:
                k = g.index(r[g.name])
                out[i, s.start + (k if right else (k + 1) % len(g.labels))] = 8.0
    return out


def test_weights_follow_whichever_side_is_right_on_validation(mini_dataset):
    records = load_split(mini_dataset, "validation")
    perfect = LABEL_SPACE.probabilities(_logits_for(records, right=True))
    perfect = {k: v.numpy() for k, v in perfect.items()}
    wrong = LABEL_SPACE.probabilities(_logits_for(records, right=False))
    wrong = {k: v.numpy() for k, v in wrong.items()}
    weights, scores = choose_weights(records, _logits_for(records, right=True), wrong)
    # Above 0.5 the right encoder outvotes the wrong n-gram heads: 0.6-1.0 tie at a perfect score, and the
    # middle of them is chosen.
    for name in ("sentiment", "themes"):
        assert [w for w, f in scores[name].items() if f == pytest.approx(1.0)] == [0.6, 0.7, 0.8, 0.9, 1.0]
        assert weights[name] == 0.8
    # Rating abstains from the wrong n-gram side's ratings down to weight 0.1: 0.1-1.0 tie, middle 0.5.
    assert [w for w, f in scores["rating"].items() if f == pytest.approx(1.0)] == [
        0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    ]  # fmt: skip
    assert weights["rating"] == 0.5
    weights, scores = choose_weights(records, _logits_for(records, right=False), perfect)
    # Below 0.5 the n-gram side outvotes the wrong encoder: 0-0.4 tie at a perfect score.
    assert weights["sentiment"] == weights["themes"] == 0.2
    for name in ("sentiment", "themes"):
        assert scores[name][0.4] == pytest.approx(1.0) and scores[name][0.6] < 0.9
    # (Rating may abstain from the wrong encoder's unsure labels at a higher weight: as good, if not better.)
    assert scores["rating"][weights["rating"]] == pytest.approx(1.0)


def test_ties_go_to_the_middle_of_the_tied_weights():
    assert middle_of_ties({0.0: 0.9, 0.1: 0.99, 0.2: 0.98, 0.3: 0.99, 0.4: 0.99, 0.5: 0.97}) == 0.3
    assert middle_of_ties({0.1: 0.99, 0.3: 0.99, 0.5: 0.5}) == 0.1  # of two middles, the lower
    assert middle_of_ties({0.0: 0.5, 0.7: 0.8, 1.0: 0.6}) == 0.7  # no tie: the best
    assert middle_of_ties({0.2: 0.9 + 1e-9, 0.4: 0.9, 0.6: 0.9}) == 0.4  # equal to 6 decimals


@pytest.fixture(scope="module")
def blended_checkpoint(tmp_path_factory, tiny_checkpoint_dir, fitted):
    """The tiny checkpoint with n-gram heads and uneven weights, as `fintag train` writes it."""
    _, heads = fitted
    path = tmp_path_factory.mktemp("blended") / "ckpt"
    shutil.copytree(tiny_checkpoint_dir, path)
    heads.save(path)
    config = json.loads((path / "config.json").read_text())
    config[BLEND_KEY] = {"sentiment": 0.3, "themes": 0.6, "rating": 0.0}
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_every_loading_path_gives_the_blended_labels(tmp_path, blended_checkpoint, fitted):
    import fintag.model  # noqa: F401  (registers the pipeline task)
    from fintag.model.checkpoint import load_tagger
    from fintag.model.export import ExportConfig, export
    from fintag.model.inference import batched_logits
    from fintag.serve.tagger import Tagger
    from transformers import pipeline

    _, heads = fitted
    loaded = load_tagger(blended_checkpoint)
    assert loaded.blend is not None and loaded.blend.weights["rating"] == 0.0
    raw = batched_logits(loaded.model, loaded.tokenizer, TEXTS, max_length=loaded.max_length)
    want_logits = Blend(heads, {"sentiment": 0.3, "themes": 0.6, "rating": 0.0}).apply(raw, TEXTS)
    want = LABEL_SPACE.decode(want_logits, loaded.thresholds)
    # Rating weight 0: the n-gram heads' rating alone, which the encoder's logits would not give.
    ngram_rating = heads.probabilities(TEXTS)["rating"]
    for r, row in zip(want, ngram_rating):
        assert list(r["rating"]["scores"].values()) == pytest.approx(row.tolist(), abs=1e-5)
    assert want != LABEL_SPACE.decode(raw, loaded.thresholds)
    for backend in ("torch", "onnx"):
        got = Tagger.load(blended_checkpoint, backend=backend).tag(TEXTS)
        for a, b in zip(got, want):
            assert (
                a["themes"]["labels"] == b["themes"]["labels"]
                and a["rating"]["label"] == b["rating"]["label"]
            )
            assert a["sentiment"]["scores"] == pytest.approx(b["sentiment"]["scores"], abs=1e-4)
    out = tmp_path / "export"
    export(ExportConfig(model=str(blended_checkpoint), out=str(out), int8=False))
    assert (out / NGRAM_WEIGHTS).is_file()
    got = Tagger.load(out).tag(TEXTS)
    assert [r["rating"]["label"] for r in got] == [r["rating"]["label"] for r in want]
    piped = pipeline("fintag-tagging", model=str(blended_checkpoint))(TEXTS, batch_size=2)
    for a, b in zip(piped, want):
        assert a["rating"]["scores"] == pytest.approx(b["rating"]["scores"], abs=1e-4)
        assert a["themes"]["labels"] == b["themes"]["labels"]


def test_nothing_to_tag_gives_nothing_not_an_error(tmp_path, blended_checkpoint):
    """The n-gram heads refuse zero rows; an empty list, an empty report and a chunk of reports with no
    taggable sentence must still give [], EmptyReportError and a skipped file, not a traceback."""
    import fintag.model  # noqa: F401  (registers the pipeline task)
    from fintag.serve.batch import tag_main
    from fintag.serve.tagger import EmptyReportError, Tagger
    from transformers import pipeline

    tagger = Tagger.load(blended_checkpoint, backend="torch")
    assert tagger.tag([]) == []
    assert tagger.tag_reports([("tables", "2023A 2024A 2025E\n12.3 45.6 78.9\n")])[0]["sentences"] == []
    with pytest.raises(EmptyReportError, match="no sentences"):
        tagger.tag_report("  \n")
    assert pipeline("fintag-tagging", model=str(blended_checkpoint))([]) == []

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("国产算力芯片需求旺盛,维持买入评级。\n", encoding="utf-8")
    (folder / "b.txt").write_text("2023A 2024A 2025E 2026E\n12.3 45.6 78.9 99.1\n", encoding="utf-8")
    (folder / "c.txt").write_text("公司 Robotaxi 车队规模扩大至 500 台,亏损收窄。\n", encoding="utf-8")
    out = tmp_path / "tags.jsonl"
    args = [str(folder), "--model", str(blended_checkpoint), "--out", str(out), "--reports_per_chunk", "1"]
    assert tag_main([*args, "--num_threads", "1"]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    tagged = sorted({r["path"].rsplit("/", 1)[-1] for r in records if r["type"] == "summary"})
    assert tagged == ["a.txt", "c.txt"]


def test_a_checkpoint_missing_its_ngram_files_is_refused_with_the_fix(tmp_path, blended_checkpoint):
    from fintag.model.checkpoint import CheckpointError, load_tagger

    path = tmp_path / "ckpt"
    shutil.copytree(blended_checkpoint, path)
    (path / NGRAM_WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=r"ngram\.safetensors.*copy the whole checkpoint"):
        load_tagger(path)
    shutil.copy(blended_checkpoint / NGRAM_WEIGHTS, path / NGRAM_WEIGHTS)
    (path / NGRAM_JSON).write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_tagger(path)


def test_training_exports_the_blend_chosen_on_validation(tmp_path, mini_dataset):
    from fintag.model.checkpoint import load_tagger
    from fintag.train.loop import train

    path = train(tiny_train_config(mini_dataset, tmp_path / "run", ngram_blend=True))
    summary = json.loads((path / "training_summary.json").read_text())
    config = json.loads((path / "config.json").read_text())
    weights = summary["ngram_blend"]["weights"]
    assert config[BLEND_KEY] == weights and set(weights) == {g.name for g in TAXONOMY}
    # Each chosen weight scores the best validation macro-F1 on the grid, and the exported tagger
    # reproduces that score with its own thresholds.
    by_w = summary["ngram_blend"]["validation_macro_f1_by_weight"]
    for g in TAXONOMY:
        assert by_w[g.name][str(weights[g.name])] == pytest.approx(max(by_w[g.name].values()))
        assert summary["validation"][g.name]["macro_f1"] == pytest.approx(by_w[g.name][str(weights[g.name])])
    loaded = load_tagger(path)
    assert loaded.blend is not None and config[THRESHOLDS_KEY] == loaded.thresholds
    card = (path / "README.md").read_text()
    assert f"sentiment {weights['sentiment']:.1f}" in card and "ngram.safetensors" in card
    off = train(tiny_train_config(mini_dataset, tmp_path / "off", ngram_blend=False))
    assert not (off / NGRAM_WEIGHTS).exists() and load_tagger(off).blend is None
    assert "N-gram blend" not in (off / "README.md").read_text()
