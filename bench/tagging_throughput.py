"""Offline tagging throughput: our batched path (`Tagger.tag` on a list) against the transformers pipeline.

Same model object, same sentences (the seed reports' sentences, repeated), same torch thread count, one
run. The baseline is `pipeline("text-classification", top_k=None, function_to_apply="none")`, which
returns every label's logit, at batch size 1 and 32; its logits are decoded with the project's label
space and compared with ours (agreement = sentences whose sentiment, rating and theme set all match).
Both our paths run on the torch backend (`bench/inference_backends.py` compares the backends). Our path
also runs with int8 dynamic quantisation (`Tagger.load(..., quantize=True)`, `--quantize`);
its agreement is with our fp32 path. The goal column reads "fp32/int8".
Models have random weights: speed does not depend on them. The GFLOP/s column is the encoder's arithmetic
(a lower bound, no padding counted) per second; the last lines set the rate the batch-size-1 goal asks
for against this CPU's fp32 matrix-product peak, measured in the same run.

    python bench/tagging_throughput.py                              # small and base, 2,400 sentences
    python bench/tagging_throughput.py --sentences small=600,base=200   # a quick run
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from common import corpus_sentences
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging
from fintag.model.checkpoint import build_from_scratch, save_tagger
from fintag.model.labels import LABEL_SPACE
from fintag.model.tokenizer import train_wordpiece
from fintag.serve.tagger import Tagger

logger = logging.getLogger("fintag.bench")

GOALS = {"pipeline bs1": 3.0, "pipeline bs32": 1.25}
INT8 = "ours int8 (--quantize)"


@dataclass
class BenchConfig:
    presets: str = field(default="small,base", metadata={"help": "comma-separated model presets"})
    sentences: str = field(
        default="2400",
        metadata={"help": "sentences per preset: one number, or per preset like small=2400,base=600"},
    )
    pipeline_batch_sizes: str = field(
        default="1,32", metadata={"help": "batch sizes of the pipeline baseline"}
    )
    batch_size: int = field(default=16, metadata={"help": "our batch size (sentences per forward pass)"})
    max_length: int = field(default=128, metadata={"help": "tokens per sentence, both paths"})
    num_threads: int = field(default=0, metadata={"help": "torch threads for both paths (0: all cores)"})
    repeats: int = field(default=1, metadata={"help": "timing rounds; the best time of each path is kept"})
    seed: int = field(default=0, metadata={"help": "seed of the random weights"})

    def count_for(self, preset: str) -> int:
        if "=" not in self.sentences:
            return int(self.sentences)
        counts = dict(item.split("=", 1) for item in self.sentences.split(","))
        if preset not in counts:
            raise ValueError(
                f"--sentences {self.sentences!r} has no count for preset {preset!r}; add {preset}=N"
            )
        return int(counts[preset])


def repeat_to(items: list[str], n: int) -> list[str]:
    return [items[i % len(items)] for i in range(n)]


def build_tagger(preset: str, tokenizer: Any, folder: Path, cfg: BenchConfig) -> Tagger:
    """A random-weight tagger of `preset`, saved as a checkpoint and loaded the way `fintag tag` loads it."""
    torch.manual_seed(cfg.seed)
    save_tagger(build_from_scratch(preset, tokenizer), tokenizer, folder / preset)
    return Tagger.load(folder / preset, batch_size=cfg.batch_size, max_length=cfg.max_length, backend="torch")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def pipeline_predictions(
    outputs: list[list[dict[str, Any]]], config: Any, thresholds: dict[str, float]
) -> list[dict]:
    """Decode the pipeline's per-label logits with the project's label space."""
    label2id = {v: int(k) for k, v in config.id2label.items()}
    logits = torch.zeros(len(outputs), config.num_labels)
    for i, scores in enumerate(outputs):
        for item in scores:
            logits[i, label2id[item["label"]]] = item["score"]
    return LABEL_SPACE.decode(logits, thresholds)


def _labels(pred: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    return pred["sentiment"]["label"], pred["rating"]["label"], tuple(pred["themes"]["labels"])


def agreement(ours: list[dict], theirs: list[dict]) -> float:
    same = sum(_labels(a) == _labels(b) for a, b in zip(ours, theirs, strict=True))
    return 100.0 * same / len(ours)


def encoder_gflop(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> float:
    """Arithmetic of one pass over `texts` without padding, in GFLOP (a lower bound: the weight matrices of
    the encoder layers, 2 FLOP per weight per token, and attention's two products; embeddings, pooler and
    head left out)."""
    lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    dense = sum(
        p.numel()
        for name, p in model.named_parameters()
        if p.dim() == 2 and not any(k in name for k in ("embeddings", "pooler", "classifier"))
    )
    config = model.config
    attention = 4 * config.num_hidden_layers * config.hidden_size * sum(n * n for n in lengths)
    return (2 * dense * sum(lengths) + attention) / 1e9


def sgemm_peak(n: int = 2048, rounds: int = 5) -> float:
    """GFLOP/s of a large fp32 matrix product with torch's current threads: what the CPU can do at best."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(timed(lambda: a @ b)[0] for _ in range(rounds))
    return 2 * n**3 / best / 1e9


def bench_preset(preset: str, texts: list[str], tokenizer: Any, folder: Path, cfg: BenchConfig) -> list[dict]:
    from transformers import pipeline

    tagger = build_tagger(preset, tokenizer, folder, cfg)
    pipe = pipeline(
        "text-classification", model=tagger.model, tokenizer=tagger.tokenizer, top_k=None,
        function_to_apply="none", device=-1,
    )  # fmt: skip
    tok_kwargs = {"truncation": True, "max_length": cfg.max_length}
    warm = texts[:64]
    tagger.tag(warm)
    pipe(warm, batch_size=8, **tok_kwargs)

    # Paths are timed in turns, `--repeats` rounds, keeping each one's best time: on a shared machine
    # the best of a few runs is the least disturbed one.
    int8 = Tagger.load(
        folder / preset, batch_size=cfg.batch_size, max_length=cfg.max_length, quantize=True, backend="torch"
    )
    int8.tag(warm)
    runs: dict[str, Callable[[], Any]] = {
        "ours (Tagger.tag)": lambda: tagger.tag(texts),
        INT8: lambda: int8.tag(texts),
    }
    for bs in (int(b) for b in cfg.pipeline_batch_sizes.split(",")):
        runs[f"pipeline bs{bs}"] = lambda bs=bs: pipe(texts, batch_size=bs, **tok_kwargs)
    best: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    for _ in range(cfg.repeats):
        for name, fn in runs.items():
            seconds, outputs[name] = timed(fn)
            best[name] = min(seconds, best.get(name, seconds))
            logger.info("%s %s: %.1f sentences/s", preset, name, len(texts) / seconds)
    ours = outputs.pop("ours (Tagger.tag)")
    gflop = encoder_gflop(tagger.model, tagger.tokenizer, texts, cfg.max_length)
    rows = [
        {"preset": preset, "path": name, "sentences": len(texts), "seconds": best[name], "gflop": gflop}
        for name in runs
    ]
    for row in rows[1:]:
        if row["path"] == INT8:  # agreement of the int8 model with the fp32 one
            row["agreement"] = agreement(ours, outputs[INT8])
            continue
        theirs = pipeline_predictions(outputs[row["path"]], tagger.model.config, tagger.thresholds)
        row["agreement"] = agreement(ours, theirs)
    return rows


def format_table(rows: list[dict]) -> str:
    """One row per path; `ours/this` and `int8/this` are our fp32 and int8 throughput over the row's."""
    cols = f"{'preset':<7} {'path':<20} {'sentences':>9} {'sent/s':>9} {'ours/this':>9} {'int8/this':>9}"
    head = f"{cols} {'goal':>11} {'agree%':>7} {'GFLOP/s':>8}"
    lines = [head, "-" * len(head)]
    rate = {(r["preset"], r["path"]): r["sentences"] / r["seconds"] for r in rows}
    for r in rows:
        this = rate[(r["preset"], r["path"])]
        ratio = rate[(r["preset"], "ours (Tagger.tag)")] / this
        int8_ratio = rate[(r["preset"], INT8)] / this
        goal = GOALS.get(r["path"])
        goal_txt = "" if goal is None else (f">={goal:g} " + ("ok" if ratio >= goal else "NO"))
        if goal is not None:
            goal_txt += "/" + ("ok" if int8_ratio >= goal else "NO")
        agree = f"{r['agreement']:.1f}" if "agreement" in r else ""
        cols = f"{r['preset']:<7} {r['path']:<20} {r['sentences']:>9} {this:>9.1f}"
        flops = r["gflop"] / r["seconds"]
        lines.append(f"{cols} {ratio:>8.2f}x {int8_ratio:>8.2f}x {goal_txt:>11} {agree:>7} {flops:>8.1f}")
    return "\n".join(lines)


def compute_bound_notes(rows: list[dict], peak: float) -> str:
    """Per preset: the fp32 arithmetic rate the batch-size-1 goal asks for, against this CPU's sgemm peak."""
    lines = [f"fp32 matrix-product peak of this CPU with these threads (2048x2048 sgemm): {peak:.1f} GFLOP/s"]
    for r in rows:
        goal = GOALS.get(r["path"])
        if r["path"] != "pipeline bs1" or goal is None:
            continue
        need = goal * r["gflop"] / r["seconds"]
        lines.append(
            f"{r['preset']}: {goal:g}x the batch-size-1 pipeline needs at least {need:.1f} GFLOP/s of fp32 "
            f"arithmetic ({need / peak:.2f} of the sgemm peak)"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    setup_logging()
    (cfg,) = parse_settings((BenchConfig,), argv, Path(__file__).name)
    threads = cfg.num_threads or (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    )
    torch.set_num_threads(threads)
    sentences = corpus_sentences()
    tokenizer = train_wordpiece(sentences)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fintag-bench-") as tmp:
        for preset in cfg.presets.split(","):
            texts = repeat_to(sentences, cfg.count_for(preset))
            rows += bench_preset(preset, texts, tokenizer, Path(tmp), cfg)
    sys.stdout.write(
        f"torch {torch.__version__}, {threads} thread(s), best of {cfg.repeats} round(s), "
        f"{len(sentences)} distinct seed sentences\n"
        + format_table(rows)
        + "\n"
        + compute_bound_notes(rows, sgemm_peak())
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
