"""Do the fast backends give the labels of torch fp32? The check that decides the default backend.

For each path (`torch int8`, `torch bf16`, `onnx fp32`, `onnx int8` and `default`, i.e.
`Tagger.load(model)` with `fintag.model.backend.DEFAULT_CPU_BACKEND` / `DEFAULT_QUANTIZE`), against
`Tagger.load(model, backend="torch", quantize=False)` on the same checkpoint:

- per group (sentiment, themes as label sets, rating): % of the test split's sentences with the same label,
  against the goal of >= 99%;
- per seed report (`data/corpus/*.txt`): whether `tag_report`'s summary is unchanged (its labels, counts,
  shares, indices and evidence sentences; the probabilities it quotes, `score`, may move in the last digit).

Run it on the trained checkpoint (labels of random weights nearly tie, so their agreement says little):

    fintag data build   # once, for data/dataset/test.jsonl
    python bench/backend_agreement.py --model artifacts/run/model
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import CORPUS, as_bf16
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging
from fintag.data.fsutil import read_jsonl
from fintag.data.reader import read_report
from fintag.data.taxonomy import TAXONOMY
from fintag.serve.tagger import Tagger
from inference_backends import agreement_per_group

logger = logging.getLogger("fintag.bench")

GOAL = 99.0
PATHS: dict[str, dict[str, Any]] = {
    "default": {},
    "torch int8": {"backend": "torch", "quantize": True},
    "torch bf16": {"backend": "torch", "quantize": False, "bf16": True},
    "onnx fp32": {"backend": "onnx", "quantize": False},
    "onnx int8": {"backend": "onnx", "quantize": True},
}


@dataclass
class AgreementConfig:
    model: str = field(default="artifacts/run/model", metadata={"help": "trained checkpoint folder"})
    split: str = field(default="data/dataset/test.jsonl", metadata={"help": "JSONL with a `text` field"})
    paths: str = field(default=",".join(PATHS), metadata={"help": "comma-separated paths to check"})
    num_threads: int = field(default=0, metadata={"help": "threads (0: torch's choice)"})


def without_scores(value: Any) -> Any:
    """`value` with every `score` entry dropped, recursively."""
    if isinstance(value, dict):
        return {k: without_scores(v) for k, v in value.items() if k != "score"}
    if isinstance(value, list):
        return [without_scores(v) for v in value]
    return value


def seed_summaries(tagger: Tagger) -> dict[str, Any]:
    return {
        p.name: without_scores(tagger.tag_report(read_report(p).text, report_id=p.name)["summary"])
        for p in sorted(CORPUS.glob("*.txt"))
    }


def main(argv: list[str]) -> int:
    setup_logging()
    (cfg,) = parse_settings((AgreementConfig,), argv, Path(__file__).name)
    split = Path(cfg.split)
    if not split.is_file():
        raise SystemExit(f"{split} does not exist: run `fintag data build` first, or pass --split")
    texts = [row["text"] for row in read_jsonl(split)]
    threads = cfg.num_threads or None
    reference = Tagger.load(cfg.model, backend="torch", quantize=False, num_threads=threads)
    want = reference.tag(texts)
    want_summaries = seed_summaries(reference)
    groups = [g.name for g in TAXONOMY]
    lines = [
        f"model {cfg.model}; {len(texts)} sentences of {split}; {len(want_summaries)} seed reports; "
        f"reference: torch fp32; goal >= {GOAL:g}% per group and every seed summary unchanged",
        f"{'path':<12} "
        + " ".join(f"{g:>12}" for g in groups)
        + f" {'summaries':>12} {'sans evid.':>12} {'goal':>5}",
    ]
    failed = False
    for name in [p.strip() for p in cfg.paths.split(",") if p.strip()]:
        if name not in PATHS:
            raise SystemExit(f"unknown path {name!r}; choose from {', '.join(PATHS)}")
        spec = dict(PATHS[name])
        bf16 = spec.pop("bf16", False)
        tagger = Tagger.load(cfg.model, num_threads=threads, **spec)
        if bf16:
            tagger = as_bf16(tagger)
        agree = agreement_per_group(want, tagger.tag(texts))
        summaries = seed_summaries(tagger)
        same = sum(summaries[k] == v for k, v in want_summaries.items())
        # Evidence lists are ordered by probability: near ties may swap them while every label stays.
        core = sum(
            {**summaries[k], "evidence": None} == {**v, "evidence": None} for k, v in want_summaries.items()
        )
        ok = all(v >= GOAL for v in agree.values()) and same == len(want_summaries)
        failed |= name == "default" and not ok
        cells = " ".join(f"{agree[g]:>11.2f}%" for g in groups)
        n = len(want_summaries)
        lines.append(f"{name:<12} {cells} {same:>7}/{n:<4} {core:>7}/{n:<4} {'ok' if ok else 'NO':>5}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
