"""`fintag data validate`: check label files and name the file, line and bad value of each problem."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintag.data.build import PROJECT_DATA
from fintag.data.normalize import normalize
from fintag.data.split import sentence_id
from fintag.data.taxonomy import LANGS, check_labels

logger = logging.getLogger(__name__)


@dataclass
class ValidateConfig:
    labels_dir: str = field(default=str(PROJECT_DATA / "labels"), metadata={"help": "folder of label files"})


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def json_objects(path: str | Path) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    """(line number, object) of each non-blank line of a JSONL file, and a problem for each line that is not
    a JSON object; a file that cannot be read as UTF-8 is one problem at line 0."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(str(p), 0, f"cannot read the file ({exc}); it must be UTF-8 JSONL")]
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[Problem] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(str(p), n, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(row, dict):
            problems.append(Problem(str(p), n, f"expected a JSON object, got {type(row).__name__}"))
            continue
        rows.append((n, row))
    return rows, problems


def validate_file(path: str | Path) -> list[Problem]:
    """Problems of one label file: report gold labels (`reports*.jsonl`) or authored sentences."""
    p = Path(path)
    is_gold = p.name.startswith("reports")
    rows, problems = json_objects(p)
    seen: dict[str, int] = {}
    for n, row in rows:
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem(str(p), n, f"text is missing or empty: {text!r}"))
            continue
        problems += [Problem(str(p), n, m) for m in check_labels(row)]
        sid = sentence_id(normalize(text).text)
        if is_gold:
            if row.get("id") != sid:
                problems.append(
                    Problem(str(p), n, f"id {row.get('id')!r} does not match the text (expected {sid})")
                )
        elif row.get("lang") not in LANGS:
            problems.append(Problem(str(p), n, f"lang is {row.get('lang')!r}; allowed: {list(LANGS)}"))
        if sid in seen:
            problems.append(Problem(str(p), n, f"duplicate of line {seen[sid]} (same normalised text)"))
        seen.setdefault(sid, n)
    return sorted(problems, key=lambda q: q.line)


def label_files(labels_dir: str | Path) -> list[Path]:
    d = Path(labels_dir)
    return sorted(d.glob("reports*.jsonl")) + sorted((d / "authored").glob("*.jsonl"))


def validate(paths: list[Path]) -> list[Problem]:
    problems: list[Problem] = []
    for path in paths:
        problems += validate_file(path)
    return problems
