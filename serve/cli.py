"""The `fintag` command line. Each subcommand's flags are generated from its settings dataclass."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("fintag")

USAGE = """usage: fintag <command> [flags]

commands:
  data build      build the labelled dataset from report files and hand labels
  data stats      print dataset counts and rewrite the data card (data/README.md)
  data validate   check label files; name the file, line and bad value of each problem
  train           fine-tune the tagger (CPU, one GPU or many through `accelerate launch`)
  evaluate        evaluate a checkpoint against the TF-IDF baseline, write eval/
  tag             tag report files (txt, md, pdf) or stdin into JSONL/CSV
  serve           run the HTTP inference endpoint
  export          write a checkpoint as ONNX (fp32 and int8) that onnxruntime serves without fintag

`fintag <command> --help` lists the flags of a command."""


def _parse(
    dataclass_types: tuple[type, ...], argv: list[str], positional: Callable[[Any], None] | None = None
):
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_types)
    if positional is not None:
        positional(parser)
    return parser.parse_args_into_dataclasses(args=argv)


def _data_build(argv: list[str]) -> int:
    from fintag.data.build import BuildConfig, BuildError, build

    (cfg,) = _parse((BuildConfig,), argv)
    try:
        stats = build(cfg)
    except BuildError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("dataset written to %s: %s", cfg.output_dir, stats["sizes"])
    return 0


def _data_stats(argv: list[str]) -> int:
    from fintag.data.stats import StatsConfig, format_table, run_stats, unmet_targets

    (cfg,) = _parse((StatsConfig,), argv)
    stats = run_stats(cfg)
    sys.stdout.write(format_table(stats) + "\n")
    unmet = unmet_targets(stats["all"])
    for line in unmet:
        logger.warning("target not met: %s", line)
    logger.info("data card written to %s", cfg.card)
    return 1 if unmet else 0


def _data_validate(argv: list[str]) -> int:
    from pathlib import Path

    from fintag.data.validate import ValidateConfig, label_files, validate

    def add_files(parser: Any) -> None:
        parser.add_argument("files", nargs="*", help="label files (default: every file in --labels_dir)")

    cfg, extra = _parse((ValidateConfig,), argv, add_files)
    paths = [Path(f) for f in extra.files] or label_files(cfg.labels_dir)
    problems = validate(paths)
    for p in problems:
        sys.stdout.write(f"{p}\n")
    logger.info("%d file(s) checked, %d problem(s)", len(paths), len(problems))
    return 1 if problems else 0


def _lazy(module: str, func: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        import importlib

        return getattr(importlib.import_module(module), func)(argv)

    return run


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "data build": _data_build,
    "data stats": _data_stats,
    "data validate": _data_validate,
    "train": _lazy("fintag.train.cli", "train_main"),
    "evaluate": _lazy("fintag.train.cli", "evaluate_main"),
    "tag": _lazy("fintag.serve.batch", "tag_main"),
    "serve": _lazy("fintag.serve.app", "serve_main"),
    "export": _lazy("fintag.model.export", "export_main"),
}


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    # accelerate logs every file of every checkpoint at INFO; keep its warnings only.
    for noisy in ("accelerate.checkpointing", "accelerate.accelerator", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    for n in (2, 1):
        name = " ".join(argv[:n])
        if name in COMMANDS:
            return COMMANDS[name](argv[n:])
    sys.stderr.write(USAGE + "\n")
    return 0 if argv[:1] in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main())
