"""Reviews (analysts' corrections from `fintag serve`'s page, or imported from Label Studio) as labels.

A reviews file is JSONL in the dataset's label format: `id` (the sentence id of the normalised text),
`report_id`, `text`, one field per label group, plus `review_id`, `reviewed_at`, offsets and the model's
labels. `fintag data build --reviews FILE` joins them in: the latest review of a sentence wins over its
gold label (`reviews_for_build`)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from fintag.data.normalize import normalize_text
from fintag.data.split import sentence_id
from fintag.data.taxonomy import TAXONOMY, check_labels

logger = logging.getLogger(__name__)


class ReviewFileError(Exception):
    """A reviews file that cannot be used; the message names the file, the line, the problem and the fix."""


def read_reviews(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete record of a reviews file, in the order written (a torn last line, left by a writer
    killed mid-write, is skipped with a warning)."""
    p = Path(path)
    if not p.is_file():
        raise ReviewFileError(f"{p}: the reviews file does not exist; check the path")
    out: list[dict[str, Any]] = []
    lines = p.read_bytes().split(b"\n")
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if line_no == len(lines):  # unterminated last line: a write cut short, never acknowledged
                logger.warning("%s:%d: torn last line skipped", p, line_no)
                continue
            raise ReviewFileError(
                f"{p}:{line_no}: not a JSON record ({exc.msg}); fix or remove that line"
            ) from exc
    return out


def reviews_for_build(paths: list[str]) -> dict[str, dict[str, Any]]:
    """The latest valid review of each sentence over `paths`, keyed by sentence id (recomputed from the
    text, so a hand-edited file cannot pair a text with another sentence's id)."""
    latest: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for path in paths:
        for n, record in enumerate(read_reviews(path), 1):
            bad = check_labels(record)
            if not isinstance(record.get("text"), str) or not normalize_text(record["text"]):
                bad.append("text is missing or empty")
            if bad:
                problems.append(f"{path}: review {n}: " + "; ".join(bad))
                continue
            text = normalize_text(record["text"])
            sid = sentence_id(text)
            latest[sid] = {
                "id": sid,
                "text": text,
                "report_id": str(record.get("report_id") or "reviewed"),
                "start": record.get("start"),
                "end": record.get("end"),
                "lang": record.get("lang"),
                **{g.name: record[g.name] for g in TAXONOMY},
            }
    if problems:
        raise ReviewFileError("invalid reviews (fix them or remove the lines):\n  " + "\n  ".join(problems))
    return latest


def append_reviews(path: str | os.PathLike[str], records: list[dict[str, Any]]) -> int:
    """Append `records` to a reviews file under an exclusive lock (shared with a running `fintag serve`),
    skipping review_ids already stored; fsynced before returning. Returns how many were appended."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.seek(0)
            data = fh.read()
            if data and not data.endswith(b"\n"):
                raise ReviewFileError(
                    f"{p} ends with a torn line (a writer was killed mid-write); start `fintag serve` on it "
                    "once (it repairs the file) or remove that last line"
                )
            stored = {json.loads(line).get("review_id") for line in data.splitlines() if line.strip()}
            new = [r for r in records if r["review_id"] not in stored]
            payload = b"".join(
                json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in new
            )
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return len(new)
