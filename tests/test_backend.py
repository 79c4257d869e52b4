"""Inference backends (torch / onnxruntime, fp32 / int8), `fintag export`, the `fintag-tagging` pipeline
and token-counted server batches, on the tiny real model of conftest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fintag.data.taxonomy import TAXONOMY


def _labels(pred: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    return pred["sentiment"]["label"], pred["rating"]["label"], tuple(pred["themes"]["labels"])


def _worst_score_gap(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    return max(
        abs(x[g.name]["scores"][k] - y[g.name]["scores"][k])
        for x, y in zip(a, b, strict=True)
        for g in TAXONOMY
        for k in g.labels
    )


@pytest.fixture(scope="module")
def torch_tagger(tiny_checkpoint_dir):
    from fintag.serve.tagger import Tagger

    return Tagger.load(tiny_checkpoint_dir, backend="torch")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, tiny_checkpoint_dir) -> Path:
    from fintag.model.export import ExportConfig, export

    out = tmp_path_factory.mktemp("export") / "onnx"
    export(ExportConfig(model=str(tiny_checkpoint_dir), out=str(out)))
    return out


def test_onnx_backend_gives_the_torch_labels(tiny_checkpoint_dir, torch_tagger, sentences):
    from fintag.model.onnx import OnnxModel
    from fintag.serve.tagger import Tagger

    onnx = Tagger.load(tiny_checkpoint_dir, backend="onnx")
    assert isinstance(onnx.model, OnnxModel)
    texts = sentences[:120]
    want, got = torch_tagger.tag(texts), onnx.tag(texts)
    assert [_labels(p) for p in got] == [_labels(p) for p in want]
    assert _worst_score_gap(want, got) < 1e-4
    report = sentences[0] + sentences[1]
    assert onnx.tag_report(report)["summary"] == torch_tagger.tag_report(report)["summary"]


def test_export_at_load_is_cached_per_checkpoint_version(tiny_checkpoint, monkeypatch, tmp_path, sentences):
    from fintag.model.backend import load_backend

    monkeypatch.setenv("FINTAG_ONNX_CACHE", str(tmp_path / "cache"))
    first = load_backend(tiny_checkpoint, backend="onnx")
    (entry,) = (tmp_path / "cache").iterdir()
    stamp = (entry / "model.onnx").stat().st_mtime_ns
    again = load_backend(tiny_checkpoint, backend="onnx")
    assert (entry / "model.onnx").stat().st_mtime_ns == stamp  # read, not written again
    assert again.model.session is not first.model.session
    # A changed checkpoint is a new cache entry.
    config = tiny_checkpoint / "config.json"
    config.write_text(config.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    load_backend(tiny_checkpoint, backend="onnx")
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_fintag_cache_holds_the_onnx_graphs_too(tiny_checkpoint, monkeypatch, tmp_path):
    from fintag.model.backend import load_backend, onnx_cache_root
    from fintag.model.base import default_base_dir

    monkeypatch.delenv("FINTAG_ONNX_CACHE", raising=False)
    monkeypatch.setenv("FINTAG_CACHE", str(tmp_path / "fintag"))
    assert default_base_dir().parent == tmp_path / "fintag" / "base"
    load_backend(tiny_checkpoint, backend="onnx")
    assert any((tmp_path / "fintag" / "onnx").glob("*/model.onnx"))
    monkeypatch.delenv("FINTAG_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert onnx_cache_root() == tmp_path / "xdg" / "fintag" / "onnx"
    assert default_base_dir().parent == tmp_path / "xdg" / "fintag" / "base"


def test_auto_backend_and_its_refusals(tiny_checkpoint_dir, export_dir):
    from fintag.model import backend
    from fintag.model.backend import BackendError, load_backend, resolve_backend

    assert resolve_backend("auto", None) == backend.DEFAULT_CPU_BACKEND
    assert resolve_backend("auto", "cuda:0") == "torch"
    with pytest.raises(BackendError, match="CPU only"):
        resolve_backend("onnx", "cuda")
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'"):
        resolve_backend("tensorrt", None)
    with pytest.raises(BackendError, match="without torch weights"):
        load_backend(export_dir, backend="torch")


def test_export_round_trips_with_onnxruntime_alone(export_dir, torch_tagger, sentences):
    """The export needs neither fintag nor torch: onnxruntime, the tokenizer file and config.json."""
    import onnxruntime as ort
    from fintag.model.labels import LABEL_SPACE
    from fintag.model.onnx import INT8_FILE, ONNX_FILE
    from tokenizers import Tokenizer

    files = {p.name for p in export_dir.iterdir()}
    assert {ONNX_FILE, INT8_FILE, "config.json", "tokenizer.json", "export.json"} <= files
    assert not any(name.startswith("model.safetensors") for name in files)
    config = json.loads((export_dir / "config.json").read_text(encoding="utf-8"))
    facts = json.loads((export_dir / "export.json").read_text(encoding="utf-8"))
    assert facts["max_abs_logit_difference_fp32"] < 1e-3

    tok = Tokenizer.from_file(str(export_dir / "tokenizer.json"))
    tok.enable_truncation(128)
    texts = sentences[:40]
    enc = tok.encode_batch(texts)
    width = max(len(e.ids) for e in enc)
    ids = np.zeros((len(texts), width), np.int64)
    mask = np.zeros((len(texts), width), np.int64)
    for i, e in enumerate(enc):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    ids[mask == 0] = config["pad_token_id"]
    logits = {}
    for name in (ONNX_FILE, INT8_FILE):
        sess = ort.InferenceSession(str(export_dir / name), providers=["CPUExecutionProvider"])
        (logits[name],) = sess.run(["logits"], {"input_ids": ids, "attention_mask": mask})
    with torch.inference_mode():
        inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        want = torch_tagger.model(**inputs).logits
    assert np.abs(logits[ONNX_FILE] - want.numpy()).max() < 1e-3
    int8_gap = np.abs(logits[INT8_FILE] - want.numpy()).max()
    assert 0 < int8_gap < 0.5  # really quantised, still close
    # The label config in the export decodes the logits as the tagger does.
    th = config["fintag_thresholds"]
    assert [_labels(p) for p in LABEL_SPACE.decode(torch.from_numpy(logits[ONNX_FILE]), th)] == [
        _labels(p) for p in torch_tagger.tag(texts)
    ]


def test_tagger_loads_an_export_and_its_int8_graph(export_dir, torch_tagger, sentences):
    from fintag.serve.tagger import Tagger

    texts = sentences[:100]
    want = torch_tagger.tag(texts)
    fp32 = Tagger.load(export_dir)
    assert [_labels(p) for p in fp32.tag(texts)] == [_labels(p) for p in want]
    int8 = Tagger.load(export_dir, quantize=True)
    assert int8.model.path.endswith("model.int8.onnx")
    got = int8.tag(texts)
    agree = sum(_labels(a) == _labels(b) for a, b in zip(want, got, strict=True)) / len(texts)
    assert agree >= 0.9
    assert 0 < _worst_score_gap(want, got) < 0.05


def test_export_command_refuses_to_replace_an_unrelated_folder(tiny_checkpoint_dir, tmp_path):
    from fintag.serve.cli import main

    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "mine.txt").write_text("keep me", encoding="utf-8")
    assert main(["export", "--model", str(tiny_checkpoint_dir), "--out", str(keep)]) == 1
    assert (keep / "mine.txt").read_text(encoding="utf-8") == "keep me"
    missing = tmp_path / "nothing-here"
    assert main(["export", "--model", str(missing), "--out", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()


def test_pipeline_task_returns_what_tagger_returns(tiny_checkpoint_dir, torch_tagger, sentences):
    import fintag.model  # noqa: F401  (registers the task)
    from transformers import pipeline

    pipe = pipeline("fintag-tagging", model=str(tiny_checkpoint_dir), device=-1)
    texts = sentences[:24]
    want = torch_tagger.tag(texts)
    for got in (pipe(texts), pipe(texts, batch_size=8)):
        assert [_labels(p) for p in got] == [_labels(p) for p in want]
        assert _worst_score_gap(want, got) < 1e-5
    assert _labels(pipe(" " + texts[0])) == _labels(want[0])  # normalised like Tagger.tag
    with pytest.raises(ValueError, match="empty after normalisation"):
        pipe("   ")


def test_server_batches_count_tokens_not_characters(torch_tagger, sentences):
    from fintag.serve.app import create_app
    from fintag.serve.settings import ServerSettings

    english = "We expect compute demand to keep growing in 2026."
    n = torch_tagger.token_count(english)
    assert n == len(torch_tagger.tokenizer(english)["input_ids"])
    assert n < len(english)  # characters would over-count a Latin sentence
    assert torch_tagger.token_count("国" * 5000) == torch_tagger.max_length  # truncated like the model

    app = create_app(ServerSettings(max_batch_tokens=60, max_wait_ms=50), torch_tagger)
    sizes: list[list[str]] = []
    state = app.state.fintag

    async def scenario() -> None:
        await state.attach(torch_tagger)
        predict = state.batcher._predict

        def spy(texts: list[str]) -> list[dict[str, Any]]:
            sizes.append(list(texts))
            return predict(texts)

        state.batcher._predict = spy
        try:
            await asyncio.gather(*(state.batcher.submit([t]) for t in sentences[:12]))
        finally:
            await state.batcher.close()

    asyncio.run(scenario())
    assert sum(len(c) for c in sizes) == 12
    for call in sizes:
        tokens = sum(torch_tagger.token_count(t) for t in call)
        assert len(call) == 1 or tokens - torch_tagger.token_count(call[-1]) < 60


def test_pipeline_task_is_registered_when_transformers_pipelines_loads_later(tiny_checkpoint_dir):
    """In a fresh process `import fintag.model` does not load transformers.pipelines (seconds); the task
    is registered when it loads."""
    import subprocess
    import sys

    code = (
        "import sys, fintag.model\n"
        "assert 'transformers.pipelines' not in sys.modules\n"
        "from transformers import pipeline\n"
        f"p = pipeline('fintag-tagging', model={str(tiny_checkpoint_dir)!r})\n"
        "print(type(p).__name__, sorted(p('投资评级:买入(维持)')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FintagTaggingPipeline ['rating', 'sentiment', 'themes']" in out.stdout


def test_pipeline_task_truncates_where_the_checkpoint_was_trained(tiny_checkpoint, sentences):
    """A checkpoint trained at 12 tokens is read at 12 by the pipeline task, as by `Tagger`, not at 128."""
    import fintag.model  # noqa: F401  (registers the task)
    from fintag.serve.tagger import Tagger
    from transformers import pipeline

    config_path = tiny_checkpoint / "config.json"
    config = json.loads(config_path.read_text())
    config["fintag_max_length"] = 12
    config_path.write_text(json.dumps(config))
    long = [s for s in sentences if len(s) > 40][:6]
    tagger = Tagger.load(tiny_checkpoint, backend="torch")
    assert tagger.max_length == 12
    pipe = pipeline("fintag-tagging", model=str(tiny_checkpoint), device=-1)
    assert _worst_score_gap(tagger.tag(long), pipe(long)) < 1e-5
    assert [pipe.preprocess(s)["input_ids"].shape[-1] for s in long] == [12] * len(long)
    assert pipe.preprocess(long[0], max_length=40)["input_ids"].shape[-1] > 12  # a caller's own length
