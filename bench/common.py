"""Helpers shared by the benchmark scripts: corpus sentences, random-weight models, a server process."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path

import httpx
from fintag.data.reader import read_report
from fintag.data.split import segment
from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


def corpus_sentences() -> list[str]:
    """The sentences of the seed reports, split with the project's splitter."""
    out: list[str] = []
    for path in sorted(CORPUS.glob("*.txt")):
        out += [s.text for s in segment(read_report(path).text).sentences]
    if not out:
        raise SystemExit(f"no sentences found in {CORPUS}/*.txt")
    return out


def build_random_model(preset: str, vocab_size: int, sentences: list[str], folder: Path) -> Path:
    """A random-weight tagger of `preset` size (speed only) with a tokenizer trained on `sentences`."""
    import torch
    from fintag.model.checkpoint import build_from_scratch, save_tagger
    from fintag.model.tokenizer import train_wordpiece

    tokenizer = train_wordpiece(sentences, vocab_size=vocab_size)
    torch.manual_seed(0)
    path = folder / f"random-{preset}"
    save_tagger(build_from_scratch(preset, tokenizer), tokenizer, path, card=f"# random-weight {preset}")
    logger.info("built a random-weight %s model in %s", preset, path)
    return path


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float, log_path: Path) -> None:
    """Poll /readyz until 200; exit with the server's log if it dies or takes too long."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=base, trust_env=False, timeout=5) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
    raise SystemExit(f"the server was not ready within {timeout_s} s:\n{log_path.read_text()[-4000:]}")


def model_counters(http: httpx.Client) -> tuple[float, float]:
    """(model calls, sentences in them) so far, from the server's /metrics."""
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(http.get("/metrics").text)
        for s in family.samples
        if s.name.startswith("fintag_model_batch_size_")
    }
    return values.get("fintag_model_batch_size_count", 0.0), values.get("fintag_model_batch_size_sum", 0.0)
