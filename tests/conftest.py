"""Shared fixtures: tiny real models and tokenizers built in code, never downloaded.

Expensive fixtures are built once per session; tests that modify files get their own copy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus"
LABELS = ROOT / "data" / "labels"


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
