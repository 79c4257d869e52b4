"""The fast tier against the default (the named baseline): sentences per second of `Tagger` on the same
dataset sentences, same threads, in one run, with the ratio and how often the two agree. Each checkpoint
with n-gram heads (`fintag.model.ngram`) is also timed without them (`blend=None`: the encoder alone), so
the blend's cost is measured in the same run.

    python bench/fast_tier.py --default artifacts/run/model --fast artifacts/fast/model

Goals (issue 11/12): the fast tier at 10x or more the default's sentences per second, and >= 1,000
sentences per second on 2 cores.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging

logger = logging.getLogger("bench.fast_tier")


@dataclass
class FastTierBenchConfig:
    default: str = field(default="artifacts/run/model", metadata={"help": "the fine-tuned default"})
    fast: str = field(default="artifacts/fast/model", metadata={"help": "the fast tier"})
    dataset_dir: str = field(default="data/dataset", metadata={"help": "sentences come from here"})
    sentences: int = field(default=3000, metadata={"help": "sentences for the fast tier"})
    default_sentences: int = field(default=300, metadata={"help": "sentences for the default (slower)"})
    repeats: int = field(default=2, metadata={"help": "timing rounds; the best of each path counts"})
    num_threads: int = field(default=0, metadata={"help": "torch/onnxruntime threads (0: all cores)"})


def rate(tagger: object, texts: list[str], repeats: int) -> float:
    tagger.tag(texts[:32])  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        tagger.tag(texts)
        best = max(best, len(texts) / (time.perf_counter() - start))
    return best


def main(argv: list[str]) -> int:
    setup_logging()
    (cfg,) = parse_settings((FastTierBenchConfig,), argv, Path(__file__).name)
    from fintag.data.build import load_split
    from fintag.serve.tagger import Tagger

    texts = [r["text"] for s in ("train", "validation", "test") for r in load_split(cfg.dataset_dir, s)]
    texts = (texts * (1 + cfg.sentences // max(1, len(texts))))[: cfg.sentences]
    threads = cfg.num_threads or None
    default = Tagger.load(cfg.default, num_threads=threads)
    fast = Tagger.load(cfg.fast, num_threads=threads)
    slow = rate(default, texts[: cfg.default_sentences], cfg.repeats)
    quick = rate(fast, texts, cfg.repeats)
    timed = (("default", default, cfg.default_sentences, slow), ("fast tier", fast, cfg.sentences, quick))
    for name, tagger, n, blended_rate in timed:
        if tagger.blend is not None:
            alone = Tagger(tagger.model, tagger.tokenizer, tagger.thresholds, max_length=tagger.max_length)
            bare = rate(alone, texts[:n], cfg.repeats)
            sys.stdout.write(
                f"{name} without its n-gram blend {bare:.1f} sentences/s: the blend costs "
                f"{bare / blended_rate:.2f}x its time\n"
            )
    sample = texts[: cfg.default_sentences]
    a, b = default.tag(sample), fast.tag(sample)
    same = {
        g: sum(x[g]["label"] == y[g]["label"] for x, y in zip(a, b)) / len(sample)
        for g in ("sentiment", "rating")
    }
    same["themes"] = sum(x["themes"]["labels"] == y["themes"]["labels"] for x, y in zip(a, b)) / len(sample)
    sys.stdout.write(
        f"default {slow:.1f} sentences/s ({cfg.default_sentences} sentences)\n"
        f"fast tier {quick:.1f} sentences/s ({cfg.sentences} sentences)\n"
        f"fast / default: {quick / slow:.1f}x (goal >= 10x); fast tier >= 1000/s: {quick >= 1000}\n"
        "labels the same as the default's: " + ", ".join(f"{g} {v:.1%}" for g, v in same.items()) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
