"""Shared fixtures: tiny real models and tokenizers built in code, never downloaded.

Expensive fixtures are built once per session; tests that modify files get their own copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Property tests draw the same examples on every run (`make test`, CI): a failure reproduces, and CI does not
# fail on a draw nobody has seen. `make fuzz` (HYPOTHESIS_PROFILE=explore) draws fresh examples on each run;
# what it finds becomes an `@example`. Loaded here, before the test modules' `@settings` inherit from it.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus"
LABELS = ROOT / "data" / "labels"


def summary_of(text: str, rated: dict[str, str] | None = None) -> tuple[dict, list[dict]]:
    """`segment` a report and summarise it, each unit positive with no theme and the rating `rated` gives
    its text (none for the others); the summary and the tagged units."""
    from fintag.data.split import segment
    from fintag.serve.summary import summarize
    from fintag.serve.tagger import sentence_results

    seg = segment(text)
    rated = rated or {}
    labels = [
        {
            "sentiment": {"label": "positive", "score": 0.9, "scores": {}},
            "themes": {"labels": [], "scores": {}},
            "rating": {"label": rated.get(s.text, "none"), "score": 0.95, "scores": {}},
        }
        for s in seg.sentences
    ]
    units = sentence_results(seg.sentences, labels)
    return summarize(units, seg.title), units


def write_pdf(path: Path, lines: list[str]) -> Path:
    """A PDF at `path` whose text layer holds `lines` (reportlab, a CJK font), one per line; no lines: a page
    with a drawing and no text, as a scan without OCR."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path))
    c.setFont("STSong-Light", 12)
    for i, line in enumerate(lines):
        c.drawString(72, 750 - 20 * i, line)
    if not lines:
        c.rect(10, 10, 100, 100)
    c.save()
    return path


def corpus_sentences() -> list[str]:
    from fintag.data.reader import read_report
    from fintag.data.split import segment

    out: list[str] = []
    for path in sorted(CORPUS.glob("*.txt")):
        out += [s.text for s in segment(read_report(path).text).sentences]
    return out


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return corpus_sentences()


@pytest.fixture(scope="session")
def tiny_tokenizer(sentences):
    from fintag.model.tokenizer import train_wordpiece

    return train_wordpiece(sentences, vocab_size=3000)


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A random-weight tiny tagger saved as a standard checkpoint (session-wide, read-only)."""
    import torch
    from fintag.model.checkpoint import build_from_scratch, save_tagger

    torch.manual_seed(0)
    model = build_from_scratch("tiny", tiny_tokenizer)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_tagger(model, tiny_tokenizer, path, card="# tiny test model")
    return path


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_checkpoint_dir) -> Path:
    """A private copy of the tiny checkpoint that a test may modify."""
    dst = tmp_path / "tiny"
    shutil.copytree(tiny_checkpoint_dir, dst)
    return dst


@pytest.fixture(scope="session")
def tagger(tiny_checkpoint_dir):
    from fintag.serve.tagger import Tagger

    return Tagger.load(tiny_checkpoint_dir)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """The real dataset build (corpus + hand labels), once per session."""
    from fintag.data.build import BuildConfig, build

    out = tmp_path_factory.mktemp("dataset")
    build(BuildConfig(output_dir=str(out)))
    return out


@pytest.fixture(scope="session")
def mini_dataset(tmp_path_factory, small_dataset) -> Path:
    """A slice of the real dataset, small enough to train the tiny preset in seconds."""
    from fintag.data.build import load_split
    from fintag.data.fsutil import write_jsonl

    out = tmp_path_factory.mktemp("mini")
    for split, n in (("train", 96), ("validation", 48), ("test", 48)):
        write_jsonl(out / f"{split}.jsonl", load_split(small_dataset, split)[:n])
    return out


def tiny_train_config(dataset_dir: Path, output_dir: Path, **overrides):
    from fintag.train.config import TrainConfig

    settings = dict(
        model="scratch",
        preset="tiny",
        dataset_dir=str(dataset_dir),
        output_dir=str(output_dir),
        epochs=2,
        batch_size=16,
        distill_augment=0,  # the default (1) is tested on its own; here it would only slow the runs
        vocab_size=2000,
        learning_rate=1e-3,
        save_every_steps=3,
        max_length=64,
        seed=7,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def run_train_cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "fintag.serve.cli", "train", *args], cwd=ROOT, env=env, **kw
    )


def cli_args(cfg) -> list[str]:
    from dataclasses import asdict

    out: list[str] = []
    for k, v in asdict(cfg).items():
        if v is None or v is False:
            continue
        out += [f"--{k}"] if v is True else [f"--{k}", str(v)]
    return out


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory, mini_dataset) -> Path:
    """A tiny encoder in the default base model's layout: a `BertModel` with a SentencePiece-unigram
    tokenizer built by `fintag.model.unigram` (what `fintag base` writes, at toy size)."""
    import torch
    from fintag.data.build import load_split
    from fintag.model.unigram import SPECIALS, build_tokenizer, compile_charsmap
    from transformers import BertConfig, BertModel

    chars = sorted(
        {
            ch
            for split in ("train", "validation", "test")
            for r in load_split(mini_dataset, split)
            for ch in r["text"]
            if ch != " "
        }
    )
    pieces = [*SPECIALS, "▁", *chars, *(f"▁{c}" for c in chars if c.isascii())]
    scores = [0.0] * len(SPECIALS) + [-2.0] + [-5.0] * (len(pieces) - len(SPECIALS) - 1)
    tokenizer = build_tokenizer(pieces, scores, compile_charsmap({0xFF0C: (0x2C,)}))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(pieces),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    out = tmp_path_factory.mktemp("pretrained") / "encoder"
    BertModel(config, add_pooling_layer=False).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
