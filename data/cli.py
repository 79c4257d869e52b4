"""`fintag data build`, `fintag data stats` and `fintag data validate` entry points."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from fintag.cli.args import parse_settings

logger = logging.getLogger(__name__)


def build_main(argv: list[str]) -> int:
    from fintag.data.build import BuildConfig, BuildError, build

    (cfg,) = parse_settings((BuildConfig,), argv, "data build")
    try:
        stats = build(cfg)
    except BuildError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("dataset written to %s: %s", cfg.output_dir, stats["sizes"])
    return 0


def stats_main(argv: list[str]) -> int:
    from fintag.data.stats import StatsConfig, format_table, run_stats, unmet_targets

    (cfg,) = parse_settings((StatsConfig,), argv, "data stats")
    try:
        stats = run_stats(cfg)
    except FileNotFoundError as exc:
        logger.error("%s", exc)
        return 1
    sys.stdout.write(format_table(stats) + "\n")
    unmet = unmet_targets(stats["all"])
    for line in unmet:
        logger.warning("target not met: %s", line)
    logger.info("data card written to %s", cfg.card)
    return 1 if unmet else 0


def validate_main(argv: list[str]) -> int:
    from fintag.data.validate import ValidateConfig, label_files, validate

    def add_files(parser: Any) -> None:
        parser.add_argument("files", nargs="*", help="label files (default: every file in --labels_dir)")

    cfg, extra = parse_settings((ValidateConfig,), argv, "data validate", add_files)
    paths = [Path(f) for f in extra.files] or label_files(cfg.labels_dir)
    if not paths:
        logger.error(
            "no label files in %s (reports*.jsonl, authored/*.jsonl); pass --labels_dir", cfg.labels_dir
        )
        return 1
    missing = [p for p in paths if not p.is_file()]
    if missing:
        logger.error("%s is not a file; pass label files (.jsonl) or --labels_dir", missing[0])
        return 1
    problems = validate(paths)
    for p in problems:
        sys.stdout.write(f"{p}\n")
    logger.info("%d file(s) checked, %d problem(s)", len(paths), len(problems))
    return 1 if problems else 0


def review_export_main(argv: list[str]) -> int:
    from fintag.data.labelstudio import ExportConfig

    (cfg,) = parse_settings((ExportConfig,), argv, "review export-ls")
    from fintag.data.labelstudio import LabelStudioError, export_tasks

    try:
        export_tasks(cfg)
    except LabelStudioError as exc:
        logger.error("%s", exc)
        return 1
    return 0


def review_import_main(argv: list[str]) -> int:
    from fintag.data.labelstudio import ImportConfig

    (cfg,) = parse_settings((ImportConfig,), argv, "review import-ls")
    from fintag.data.labelstudio import LabelStudioError, import_annotations
    from fintag.data.reviews import ReviewFileError

    try:
        import_annotations(cfg)
    except (LabelStudioError, ReviewFileError) as exc:
        logger.error("%s", exc)
        return 1
    return 0
