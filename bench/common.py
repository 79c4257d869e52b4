"""Helpers shared by the benchmark scripts: corpus sentences, random-weight models, a server process."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from fintag.data.reader import read_report
from fintag.data.split import segment
from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


def as_bf16(tagger: Any) -> Any:
    """A torch `Tagger` with its model cast to bfloat16 (oneDNN uses AVX-512 BF16 where the CPU has it);
    no backend switch exists for it yet, so the benchmarks cast it themselves."""
    import torch

    tagger.model = tagger.model.to(torch.bfloat16)
    return tagger


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
    """Poll /readyz until 200 and every worker is ready; exit with the server log if it dies or is slow."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=base, trust_env=False, timeout=5) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                # /readyz speaks for the worker that answers; fintag_model_ready is 1 once every worker is.
                if http.get("/readyz").status_code == 200 and _all_ready(http):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
    raise SystemExit(f"the server was not ready within {timeout_s} s:\n{log_path.read_text()[-4000:]}")


def _all_ready(http: httpx.Client) -> bool:
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "fintag_model_ready":
                return sample.value == 1
    return False


def model_counters(http: httpx.Client) -> tuple[float, float, float]:
    """(model calls, sentences in them, seconds spent in them) so far, from the server's /metrics."""
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(http.get("/metrics").text)
        for s in family.samples
        if s.name.startswith(("fintag_model_batch_size_", "fintag_model_call_duration_seconds_"))
    }
    return (
        values.get("fintag_model_batch_size_count", 0.0),
        values.get("fintag_model_batch_size_sum", 0.0),
        values.get("fintag_model_call_duration_seconds_sum", 0.0),
    )


E5_SMALL_SHAPE = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "vocab_size": 50000,
    "layer_norm_eps": 1e-12,
}


def train_unigram(sentences: list[str], vocab_size: int = 8000, max_piece_length: int = 2):
    """An XLM-R-style SentencePiece-Unigram tokenizer (Metaspace, `<s> … </s>`, pad id 1) trained on
    `sentences`: the layout of the converted multilingual-e5-small's `tokenizer.json`. Pieces of at most
    `max_piece_length` characters give the seed sentences 41 tokens on average, near the 47 of e5-small's
    own tokenizer (longer pieces learnt from this small corpus would give 25 and flatter the speed)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", max_piece_length=max_piece_length
    )
    tok.train_from_iterator(sentences, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>", model_max_length=512,
    )  # fmt: skip


def build_e5_shape_model(sentences: list[str], folder: Path, seed: int = 0) -> Path:
    """A random-weight tagger of multilingual-e5-small's shape (12 layers, 384 wide, 12 heads, FFN 1536,
    50,000-piece vocabulary) with a Unigram tokenizer trained on `sentences`: speed only, labels random."""
    import torch
    from fintag.model.checkpoint import save_tagger
    from fintag.model.labels import LABEL_SPACE
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = train_unigram(sentences)
    config = BertConfig(**E5_SMALL_SHAPE, pad_token_id=tokenizer.pad_token_id, **LABEL_SPACE.config_fields())
    torch.manual_seed(seed)
    path = folder / "random-e5-small-shape"
    save_tagger(BertForSequenceClassification(config), tokenizer, path, card="# random-weight e5-small shape")
    logger.info("built a random-weight e5-small-shaped model in %s", path)
    return path
