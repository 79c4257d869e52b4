"""The reviews file: analysts' corrections, one JSON object a line, append-only.

Each record is in the dataset's label format (`id`, `report_id`, `text` and one field per label group, as in
`data/labels/reports*.jsonl`) plus where it came from: offsets, the model's labels and scores, the reviewer,
the time and a `review_id`. `fintag data build --reviews FILE` reads it back as labels.

Nothing is lost: every record is written whole under an exclusive `fcntl` lock (so several server processes,
`--workers N`, can share one file), flushed and fsynced before the request is answered. A process killed in
the middle of a write can leave a torn last line; `ReviewStore` cuts it off when it opens the file (the
fragment is kept beside it in `<file>.torn`), so every earlier review stays readable. A `review_id` is stored
once: a retry of a request that was already stored returns the stored record.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from fintag.data.normalize import normalize_text
from fintag.data.reviews import ReviewFileError, read_reviews
from fintag.data.split import sentence_id

logger = logging.getLogger(__name__)


def _cut_tail(fh: BinaryIO, path: Path, keep: int) -> int:
    """With `fh` (open for reading and writing on `path`) locked: move the bytes after offset `keep` (a torn
    last line) to `<path>.torn` and cut them off; return how many."""
    fh.seek(keep)
    fragment = fh.read()
    if not fragment:
        return 0
    with path.with_name(path.name + ".torn").open("ab") as torn:
        torn.write(fragment + b"\n")
        torn.flush()
        os.fsync(torn.fileno())
    fh.truncate(keep)
    fh.flush()
    os.fsync(fh.fileno())
    logger.warning(
        "%s ended with a torn line (%d bytes, an interrupted write); cut off, kept in %s.torn",
        path,
        len(fragment),
        path.name,
    )
    return len(fragment)


def repair_torn_tail(path: Path) -> int:
    """Cut an unterminated last line (a write interrupted by a crash) off `path`; return the bytes removed.

    The fragment is appended to `<path>.torn` so nothing is silently dropped."""
    if not path.exists():
        return 0
    with path.open("r+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            data = fh.read()
            if not data or data.endswith(b"\n"):
                return 0
            return _cut_tail(fh, path, data.rfind(b"\n") + 1)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _parse_review(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """A complete line of a reviews file as a stored review, or None and why it is not one."""
    try:
        record = json.loads(line)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at character {exc.pos}"
    if not isinstance(record, dict):
        return None, f"JSON {type(record).__name__}, not an object"
    if not isinstance(record.get("review_id"), str) or not record["review_id"]:
        hint = "; it looks like `fintag tag` output" if record.get("type") in ("sentence", "summary") else ""
        return None, f"a JSON object without a review_id{hint}"
    return record, ""


# What a retry with the same review_id must repeat to be the same review (not a new correction).
CONTENT_KEYS = ("report_id", "text", "start", "end", "sentiment", "themes", "rating")


class ReviewConflictError(ValueError):
    """A review_id already stored with other content."""


def make_record(body: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a review request (a `ReviewRequest` as a dict)."""
    text = normalize_text(body["text"])
    if not text:
        raise ValueError("the sentence is empty after normalisation; send the sentence's text")
    return {
        "id": sentence_id(text),
        "review_id": body.get("review_id") or uuid.uuid4().hex,
        "report_id": body["report_id"],
        "text": text,
        "start": body.get("start"),
        "end": body.get("end"),
        "lang": body.get("lang"),
        "sentiment": body["sentiment"],
        "themes": sorted(set(body["themes"])),
        "rating": body["rating"],
        "model": body.get("model"),
        "reviewer": body.get("reviewer"),
        "reviewed_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }


class ReviewStore:
    """Appends reviews to one JSONL file: one writer at a time in this process (an asyncio lock, the write
    in a thread), one across processes (`fcntl.flock`), each record fsynced before `append` returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()
        self._ids: dict[str, dict[str, Any]] = {}
        self._seen_bytes = 0  # the file is indexed up to here, the end of a complete line
        self._seen_lines = 0

    def open(self) -> None:
        """Repair a torn last line and index the stored review ids (the first review creates the file).

        Raises `ReviewFileError` when the path is not a file, or when a complete line is not a review (a
        file of another kind, a hand edit gone wrong): serving would fail on it later, or append reviews
        to the wrong file. A torn last line, an interrupted write, is no such error: it is cut off."""
        if self.path.exists() and not self.path.is_file():
            raise ReviewFileError(f"{self.path} is not a file; pass --reviews_file with a file path")
        if not self.path.exists():
            return
        repair_torn_tail(self.path)
        self._catch_up()
        logger.info("reviews file %s: %d reviews", self.path, len(self._ids))

    def _catch_up(self) -> None:
        """Index the complete lines that other processes appended since we last looked (an unterminated
        last line is left for `open` or the next append to cut off); raise `ReviewFileError` naming the
        first line that is not a review."""
        size = self.path.stat().st_size if self.path.exists() else 0
        if size <= self._seen_bytes:
            return
        with self.path.open("rb") as fh:
            fh.seek(self._seen_bytes)
            chunk = fh.read(size - self._seen_bytes)
        end = chunk.rfind(b"\n") + 1
        lines = chunk[:end].split(b"\n")[:-1]  # what follows the last newline is not a complete line
        for line_no, line in enumerate(lines, self._seen_lines + 1):
            if not line.strip():
                continue
            record, problem = _parse_review(line)
            if record is None:
                raise ReviewFileError(
                    f"{self.path} line {line_no} is not a review ({problem}); fix or move it, or pass "
                    "another --reviews_file"
                )
            self._ids[record["review_id"]] = record
        self._seen_bytes += end
        self._seen_lines += len(lines)

    def _append_sync(self, record: dict[str, Any]) -> dict[str, Any]:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._catch_up()
                if os.fstat(fh.fileno()).st_size > self._seen_bytes:
                    # An unterminated last line: a write that failed half-way (disk full) or a writer killed
                    # mid-write. Under the lock no write is in progress, so it is torn: cut it off, or this
                    # record would be glued to it and both lost.
                    _cut_tail(fh, self.path, self._seen_bytes)
                stored = self._ids.get(record["review_id"])
                if stored is not None:
                    changed = [k for k in CONTENT_KEYS if stored.get(k) != record.get(k)]
                    if changed:
                        raise ReviewConflictError(
                            f"review_id {record['review_id']!r} is already stored with other "
                            f"{', '.join(changed)}; send a new review_id for a new correction"
                        )
                    return stored
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
                self._ids[record["review_id"]] = record
                self._seen_bytes += len(line)
                self._seen_lines += 1
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return record

    async def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store `record` (once per review_id); return what is stored."""
        async with self._lock:
            return await asyncio.to_thread(self._append_sync, record)

    async def list(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        async with self._lock:
            return await asyncio.to_thread(read_reviews, self.path)
