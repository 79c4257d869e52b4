"""`fintag`: find the subcommand in `fintag.cli.commands`, run it, and turn usage errors into exit 2."""

from __future__ import annotations

import importlib
import logging
import sys

from fintag.cli.args import UsageError, report_usage_error
from fintag.cli.commands import COMMANDS, find

logger = logging.getLogger("fintag")


def usage(group: str = "") -> str:
    """The list of commands (of one group, e.g. "data", when given)."""
    chosen = {n: c for n, c in COMMANDS.items() if not group or n.split()[0] == group}
    width = max(len(name) for name in chosen) + 2
    lines = [f"  {name:<{width}}{c.summary}" for name, c in chosen.items()]
    head = f"usage: fintag {group} <command> [flags]" if group else "usage: fintag <command> [flags]"
    return (
        f"{head}\n\ncommands:\n"
        + "\n".join(lines)
        + "\n\n`fintag <command> --help` lists the flags of a command."
    )


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    # accelerate logs every file of every checkpoint at INFO; keep its warnings only.
    for noisy in ("accelerate.checkpointing", "accelerate.accelerator", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _unknown(argv: list[str]) -> str:
    words = [w for w in argv[:2] if not w.startswith("-")]
    typed = " ".join(words) or argv[0]
    close = [name for name in COMMANDS if name.split()[0] == typed.split()[0]]
    hint = f" (did you mean {' / '.join(close)}?)" if close else ""
    return f"fintag: error: unknown command {typed!r}{hint}\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    if argv[:1] in (["-h"], ["--help"], ["help"]):
        sys.stdout.write(usage() + "\n")
        return 0
    if not argv:
        sys.stderr.write(usage() + "\n")
        return 2
    found = find(argv)
    groups = {name.split()[0] for name in COMMANDS if " " in name}
    if found is None and argv[0] in groups and (len(argv) == 1 or argv[1] in ("-h", "--help")):
        # `fintag data` / `fintag data --help`: the commands of the group.
        (sys.stdout if len(argv) > 1 else sys.stderr).write(usage(argv[0]) + "\n")
        return 0 if len(argv) > 1 else 2
    if found is None:
        sys.stderr.write(_unknown(argv) + "\n" + usage() + "\n")
        return 2
    command, rest = found
    if command.parser is not None and any(a in ("-h", "--help") for a in rest):
        module, function = command.parser.split(":")
        sys.stdout.write(getattr(importlib.import_module(module), function)().format_help())
        return 0
    module, function = command.target.split(":")
    try:
        return int(getattr(importlib.import_module(module), function)(rest))
    except UsageError as exc:
        return report_usage_error(command.name, exc)


if __name__ == "__main__":
    sys.exit(main())
