"""Command-line flags generated from settings dataclasses, with the same help style in every command.

Each field becomes `--<name>`; its `metadata["help"]` is the help text, followed by the default once.
Booleans are `--flag` (true) or `--flag true|false`; `Literal` fields list their choices; `X | None`
fields default to unset. A bad flag or value raises `UsageError`, which `fintag` prints with the usage
line of the command and exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from fintag.cli.commands import COMMANDS

logger = logging.getLogger(__name__)

TRUE_WORDS = ("true", "yes", "1", "on")
FALSE_WORDS = ("false", "no", "0", "off")


class UsageError(ValueError):
    """A command line that cannot run; the message names the flag and the fix, `usage` the command's usage."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


def _underscored(arg: str) -> str:
    """`--summary-only` (and `--summary-only=x`) as `--summary_only`: both spellings are accepted."""
    if not arg.startswith("--"):
        return arg
    name, eq, value = arg.partition("=")
    return "--" + name[2:].replace("-", "_") + eq + value


class Parser(argparse.ArgumentParser):
    """An argparse parser that raises `UsageError` instead of printing and exiting, and takes flags
    spelled with dashes or underscores."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(message, self.format_usage())

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        argv = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args([_underscored(a) for a in argv], namespace)


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=110)


def report_usage_error(command: str, exc: UsageError) -> int:
    """Print a usage error the way every command does (usage line, problem, where to look); return 2."""
    sys.stderr.write(f"{exc.usage}fintag {command}: error: {exc}\nsee `fintag {command} --help`\n")
    return 2


def parse_bool(value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def add_bool_flag(parser: argparse.ArgumentParser, name: str, help_text: str, **kwargs: Any) -> None:
    """The one style of boolean flag: `--name` alone means true; `--name false` turns it off."""
    parser.add_argument(
        f"--{name}", nargs="?", const=True, type=parse_bool, metavar="true|false", help=help_text, **kwargs
    )


def with_default(help_text: str, default: Any) -> str:
    """Help text plus its default, unless the text already gives it as "(default: ...)" (once, never twice);
    a text that only mentions a default ("the fine-tuned default", "its CPU default") still gets it."""
    if default is None or "(default:" in help_text.lower():
        return help_text
    shown = str(default).lower() if isinstance(default, bool) else default
    return f"{help_text} (default: {shown})"


def command_parser(command: str, **kwargs: Any) -> Parser:
    """An empty parser for `fintag <command>` (or a script's name): usage line, description, help style."""
    entry = COMMANDS.get(command)
    description = None
    if entry is not None:
        first = entry.summary[:1].upper() + entry.summary[1:] + "."
        description = f"{first} {entry.description}".strip()
    prog = f"fintag {command}" if entry is not None else command  # a script (bench/) names itself
    return Parser(prog=prog, description=description, formatter_class=_Formatter, **kwargs)


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _add_field(parser: argparse.ArgumentParser, f: dataclasses.Field[Any], tp: Any) -> None:
    help_text = str(f.metadata.get("help", ""))
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = None
    tp = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if tp is bool:
        add_bool_flag(parser, f.name, with_default(help_text, default), default=default)
    elif origin is typing.Literal:
        choices = list(typing.get_args(tp))
        parser.add_argument(
            f"--{f.name}",
            choices=choices,
            type=type(choices[0]),
            default=default,
            help=with_default(help_text, default),
        )
    elif origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1]
        parser.add_argument(
            f"--{f.name}",
            nargs="+",
            type=item,
            default=default,
            metavar=f.name.upper(),
            help=with_default(help_text, default),
        )
    elif tp in (str, int, float):
        parser.add_argument(
            f"--{f.name}",
            type=tp,
            default=default,
            metavar=f.name.upper(),
            help=with_default(help_text, default),
        )
    else:
        raise TypeError(f"cannot make a flag of {f.name}: {tp!r}")


def settings_parser(
    dataclass_types: tuple[type, ...], command: str, positional: Callable[[Any], None] | None = None
) -> Parser:
    """The parser of `fintag <command>`: one flag per field of each settings dataclass."""
    parser = command_parser(command)
    if positional is not None:
        positional(parser)
    for cls in dataclass_types:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                _add_field(parser, f, hints[f.name])
    return parser


def parse_settings(
    dataclass_types: tuple[type, ...],
    argv: list[str],
    command: str,
    positional: Callable[[Any], None] | None = None,
) -> tuple[Any, ...]:
    """One instance per settings dataclass (then, when `positional` adds arguments, their namespace).

    Raises `UsageError` for an unknown flag, a bad value, or a value the dataclass refuses."""
    parser = settings_parser(dataclass_types, command, positional)
    namespace = parser.parse_args(argv)
    values = vars(namespace)
    out: list[Any] = []
    used: set[str] = set()
    for cls in dataclass_types:
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        used.update(names)
        try:
            out.append(cls(**{n: values[n] for n in names}))
        except ValueError as exc:  # a __post_init__ check: its message names the flag and the fix
            raise UsageError(str(exc), parser.format_usage()) from None
    if positional is not None:
        out.append(argparse.Namespace(**{k: v for k, v in values.items() if k not in used}))
    return tuple(out)
