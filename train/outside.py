"""Report sentences outside the corpus: the closest this project has to the sentences it is judged on.

`data/probes/outside.jsonl` holds units of the analysts' test reports (`tests/reports`, written after the
dataset, never trained on, in no split), cut by the one splitter and labelled blind by two annotators, their
disagreements adjudicated (`data/probes/README.md`). Each line: {"text", "sentiment", "themes", "rating",
"lang", "kind", "report"}. `fintag evaluate` scores the model and the baseline on them as on a split (macro-F1
per group, by kind and language)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fintag.data.split import KINDS
from fintag.data.taxonomy import LANGS, check_labels
from fintag.train.probe import load_held_out, resolve_held_out

OUTSIDE = "outside"  # its name among the evaluated sets
DEFAULT_OUTSIDE = Path(__file__).resolve().parents[1] / "data" / "probes" / "outside.jsonl"
SLICE_KEYS = ("kind", "lang")


class OutsideError(ValueError):
    """A file of outside sentences that cannot be scored; the message names the file, the line and the fix."""


def resolve_outside(path: str) -> Path | None:
    """`""` is the bundled file, `"none"` skips it, anything else is a path that must exist."""
    return resolve_held_out(path, DEFAULT_OUTSIDE, "outside", "file of outside sentences", OutsideError)


def _outside_problem(r: dict[str, Any]) -> str | None:
    found = check_labels(r)
    if r.get("lang") not in LANGS:
        found.append(f"lang is {r.get('lang')!r}; allowed: {list(LANGS)}")
    if r.get("kind") not in KINDS:
        found.append(f"kind is {r.get('kind')!r}; allowed: {list(KINDS)}")
    return found[0] if found else None


def load_outside(path: str | Path) -> list[dict[str, Any]]:
    """The records with normalised text, each checked against the taxonomy, the languages and the splitter's
    kinds; the first problem is raised naming the file and line."""
    return load_held_out(path, "outside", OutsideError, _outside_problem)
