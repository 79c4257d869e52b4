"""The rating probe: held-out sentences, outside every split, that score one behaviour of the rating head.

`data/probes/ratings.jsonl` holds sentences written after the dataset and never trained on: rating-scale
definitions (gold `none`), ratings stated beside a return band, rating changes in every direction and
rating words that are not a stated rating. Each line: {"text", "rating", "kind", "lang"}. `fintag
evaluate` scores the model and the baseline on it (rating accuracy per kind) next to the splits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fintag.data.normalize import normalize_text
from fintag.data.taxonomy import RATING
from fintag.data.validate import json_objects

PROBE_KINDS = ("definition", "stated", "change", "other")
DEFAULT_PROBE = Path(__file__).resolve().parents[1] / "data" / "probes" / "ratings.jsonl"


class ProbeError(ValueError):
    """A probe file that cannot be scored; the message names the file, the line and the fix."""


def resolve_held_out(path: str, bundled: Path, flag: str, what: str, error: type[ValueError]) -> Path | None:
    """A held-out file's flag (`--probe`, `--outside`): `""` is the `bundled` file, `"none"` skips it,
    anything else is a path that must exist (else `error`, naming the file and the fix)."""
    if path == "none":
        return None
    found = Path(path) if path else bundled
    if not found.is_file():
        raise error(f"{what} {found} does not exist; pass --{flag} PATH, or --{flag} none to skip")
    return found


def resolve_probe(path: str) -> Path | None:
    """`""` is the bundled probe, `"none"` skips the probe, anything else is a path that must exist."""
    return resolve_held_out(path, DEFAULT_PROBE, "probe", "rating probe", ProbeError)


def load_held_out(
    path: str | Path, flag: str, error: type[ValueError], problem: Callable[[dict[str, Any]], str | None]
) -> list[dict[str, Any]]:
    """A held-out JSONL file's records with normalised text (the one normaliser): each line a JSON object with
    a non-empty `text` and no `problem`; the first problem is raised as `error`, naming the file, the line and
    the fix (`--{flag} none` skips the file)."""
    rows, problems = json_objects(path)
    if problems:
        raise error(f"{problems[0]}; fix the line, or pass --{flag} none")
    if not rows:
        raise error(f"{path} holds no sentences; add lines or pass --{flag} none")
    for line, r in rows:
        if not isinstance(r.get("text"), str) or not r["text"].strip():
            raise error(f"{path}:{line}: `text` must be a non-empty string")
        if found := problem(r):
            raise error(f"{path}:{line}: {found}")
    return [{**r, "text": normalize_text(r["text"])} for _, r in rows]


def _probe_problem(r: dict[str, Any]) -> str | None:
    if r.get("rating") not in RATING.labels:
        return f"rating {r.get('rating')!r} is not one of {', '.join(RATING.labels)}"
    if r.get("kind") not in PROBE_KINDS:
        return f"kind {r.get('kind')!r} is not one of {', '.join(PROBE_KINDS)}"
    return None


def load_probe(path: str | Path) -> list[dict[str, Any]]:
    """The probe's records with normalised text, each checked against the taxonomy and the probe's kinds."""
    return load_held_out(path, "probe", ProbeError, _probe_problem)


def score_probe(records: Sequence[dict[str, Any]], predicted: Sequence[str]) -> dict[str, Any]:
    """Rating accuracy overall and per kind, and the sentences rated wrong."""
    if len(records) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(records)} probe sentences")
    hits = [r["rating"] == p for r, p in zip(records, predicted)]
    by_kind = {
        kind: {"correct": sum(h for r, h in zip(records, hits) if r["kind"] == kind), "n": n}
        for kind in PROBE_KINDS
        if (n := sum(r["kind"] == kind for r in records))
    }
    wrong = [
        {"text": r["text"], "kind": r["kind"], "gold": r["rating"], "predicted": p}
        for r, p, h in zip(records, predicted, hits)
        if not h
    ]
    return {"correct": sum(hits), "n": len(records), "by_kind": by_kind, "wrong": wrong}


def probe_table(probe: dict[str, Any]) -> list[str]:
    """Correct sentences per kind, model and baseline side by side (markdown)."""
    m, b = probe["model"], probe["baseline"]
    lines = ["| kind | n | model | baseline |", "| --- | --- | --- | --- |"]
    for kind, mk in m["by_kind"].items():
        lines.append(f"| {kind} | {mk['n']} | {mk['correct']} | {b['by_kind'][kind]['correct']} |")
    lines.append(f"| all | {m['n']} | {m['correct']} | {b['correct']} |")
    return lines


def probe_report(probe: dict[str, Any], path: Path) -> list[str]:
    """The report.md section: the table, then the sentences the model rated wrong."""
    intro = f"Held-out sentences outside every split (`{path.name}`), correct ratings:"
    lines = ["## rating probe", "", intro, ""]
    lines += [*probe_table(probe), ""]
    if wrong := probe["model"]["wrong"]:
        lines += ["Rated wrong by the model:", ""]
        lines += [f"- {w['kind']}: gold {w['gold']}, predicted {w['predicted']}: {w['text']}" for w in wrong]
        lines.append("")
    return lines
