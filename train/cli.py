"""`fintag train` and `fintag evaluate` entry points (flags generated from the settings dataclasses)."""

from __future__ import annotations

import logging
import sys

from fintag.cli.args import UsageError, parse_settings, report_usage_error, settings_parser

logger = logging.getLogger(__name__)


def _usage(settings: type, command: str) -> str:
    """The usage line of a command, for a refusal found after its flags were parsed."""
    return settings_parser((settings,), command).format_usage()


def train_main(argv: list[str]) -> int:
    from fintag.model.paths import ModelPathError
    from fintag.train.config import ModelLengthError, TrainConfig, check_model_fits

    try:
        (cfg,) = parse_settings((TrainConfig,), argv, "train")
    except UsageError as exc:  # a setting was refused: the message names it and the fix
        return report_usage_error("train", exc)
    # The models the flags name, before any data is read or anything is written under --output_dir.
    try:
        check_model_fits(cfg)
    except ModelLengthError as exc:
        return report_usage_error("train", UsageError(str(exc), _usage(TrainConfig, "train")))
    except ModelPathError as exc:
        logger.error("%s", exc)
        return 1
    from fintag.model.checkpoint import CheckpointError
    from fintag.train.loop import RunError, train

    try:
        path = train(cfg)
    except (RunError, CheckpointError, FileNotFoundError) as exc:
        logger.error("%s", exc)
        return 1
    logger.info("model written to %s", path)
    return 0


def evaluate_main(argv: list[str]) -> int:
    from fintag.train.config import EvalConfig

    try:
        (cfg,) = parse_settings((EvalConfig,), argv, "evaluate")
    except UsageError as exc:
        return report_usage_error("evaluate", exc)
    from fintag.model.checkpoint import CheckpointError
    from fintag.train.evaluate import SplitError, check_splits, evaluate, side_by_side
    from fintag.train.outside import OutsideError
    from fintag.train.probe import ProbeError, probe_table

    try:
        check_splits(cfg)
    except SplitError as exc:  # a split name the dataset lacks: the message names the ones it has
        return report_usage_error("evaluate", UsageError(str(exc), _usage(EvalConfig, "evaluate")))
    except FileNotFoundError as exc:
        logger.error("%s", exc)
        return 1
    try:
        results = evaluate(cfg)
    except (CheckpointError, FileNotFoundError, ProbeError, OutsideError) as exc:
        logger.error("%s", exc)
        return 1
    for split in (s for s in results if s != "probe"):
        sys.stdout.write(side_by_side(results, split) + "\n\n")
    if "probe" in results:
        sys.stdout.write("\n".join(["rating probe, correct:", *probe_table(results["probe"])]) + "\n")
    return 0


def base_main(argv: list[str]) -> int:
    from fintag.model.base import BaseConfig

    try:
        (cfg,) = parse_settings((BaseConfig,), argv, "base")
    except UsageError as exc:
        return report_usage_error("base", exc)
    from fintag.model.base import BaseModelError, ensure_base

    try:
        path = ensure_base(cfg.output_dir or None, trim=cfg.trim, force=cfg.force, corpus_dir=cfg.corpus_dir)
    except BaseModelError as exc:
        logger.error("%s", exc)
        return 1
    sys.stdout.write(f"{path}\n")
    return 0


def audit_main(argv: list[str]) -> int:
    from fintag.train.config import AuditConfig

    try:
        (cfg,) = parse_settings((AuditConfig,), argv, "data audit")
    except UsageError as exc:
        return report_usage_error("data audit", exc)
    from fintag.model.base import BaseModelError
    from fintag.train.audit import audit

    try:
        rows = audit(cfg)
    except (BaseModelError, FileNotFoundError) as exc:
        logger.error("%s", exc)
        return 1
    for row in rows:
        sys.stdout.write(
            f"{row['gold_probability']:.3f} {row['group']}: gold {row['gold']} predicted {row['predicted']} "
            f"[{row['report_id']}] {row['text'][:100]}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
