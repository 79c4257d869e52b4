"""Speed of `normalize_text` (whole-string fast path) against `normalize(text).text` (the per-character path
that keeps offsets: the named baseline), on the same inputs in one run, and whether they agree.

Inputs: the raw lines of the seed reports (data/corpus/*.txt) and raw 80-character windows of them, as a
client would send sentences to the server before normalisation.

    python bench/normalize_speed.py --repeats 5
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import CORPUS
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging
from fintag.data.normalize import _fast_text, normalize, normalize_text
from fintag.data.reader import read_report

logger = logging.getLogger("bench.normalize_speed")


@dataclass
class NormalizeBenchConfig:
    repeats: int = field(default=5, metadata={"help": "timing rounds; the best round of each path counts"})
    window: int = field(default=80, metadata={"help": "characters per raw window of report text"})


def raw_inputs(window: int) -> list[str]:
    out: list[str] = []
    for path in sorted(CORPUS.glob("*.txt")):
        text = read_report(path).text
        out += [line for line in text.split("\n") if line.strip()]
        out += [text[i : i + window] for i in range(0, len(text), window)]
    return out


def best_time(fn: Callable[[str], str], texts: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for t in texts:
            fn(t)
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    (cfg,) = parse_settings(
        (NormalizeBenchConfig,), list(sys.argv[1:] if argv is None else argv), Path(__file__).name
    )
    texts = raw_inputs(cfg.window)
    fast_share = sum(_fast_text(t) is not None for t in texts) / len(texts)
    disagree = sum(normalize_text(t) != normalize(t).text for t in texts)
    base = best_time(lambda t: normalize(t).text, texts, cfg.repeats)
    ours = best_time(normalize_text, texts, cfg.repeats)
    chars = sum(map(len, texts))
    sys.stdout.write(
        f"\n{len(texts)} raw inputs ({chars} characters), best of {cfg.repeats} rounds\n"
        f"  normalize(t).text (baseline): {1e6 * base / len(texts):7.1f} us/input\n"
        f"  normalize_text(t):            {1e6 * ours / len(texts):7.1f} us/input\n"
        f"  speed-up: {base / ours:.2f}x; fast path taken for {100 * fast_share:.1f}% of inputs; "
        f"{disagree} inputs normalised differently\n"
    )
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
