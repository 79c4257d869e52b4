"""Wall time of `fintag <command> --help` for every command, against `fintag --help` (the named baseline:
the command table alone) in the same run. Each is a fresh `python -m fintag.cli` process; best of N.

    python bench/cli_help.py --repeats 5
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fintag.cli.args import parse_settings
from fintag.cli.commands import COMMANDS
from fintag.cli.main import setup_logging

logger = logging.getLogger("bench.cli_help")


@dataclass
class HelpBenchConfig:
    repeats: int = field(default=5, metadata={"help": "runs per command; the best counts"})


def best_seconds(args: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fintag.cli", *args], capture_output=True, check=True)
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    (cfg,) = parse_settings(
        (HelpBenchConfig,), list(sys.argv[1:] if argv is None else argv), Path(__file__).name
    )
    baseline = best_seconds(["--help"], cfg.repeats)
    sys.stdout.write(f"| command | --help, best of {cfg.repeats} (s) | ratio to `fintag --help` |\n")
    sys.stdout.write("| --- | --- | --- |\n")
    sys.stdout.write(f"| (none: `fintag --help`) | {baseline:.2f} | 1.00 |\n")
    for name in COMMANDS:
        seconds = best_seconds([*name.split(), "--help"], cfg.repeats)
        sys.stdout.write(f"| {name} | {seconds:.2f} | {seconds / baseline:.2f} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
