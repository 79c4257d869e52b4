"""Records written by `fintag tag`, their formats, and the durable, resumable files they go to.

Formats (one record per line in both):
- JSONL (default): `{"type": "sentence", ...}` per sentence and, after a report's sentences, one
  `{"type": "summary", ...}` record per report.
- CSV: one file with a `type` column. Sentence rows fill the columns of `SENTENCE_COLUMNS`; summary rows
  fill those of `SUMMARY_COLUMNS` (`title` = the report's title line, `sentences` = count, `restated` =
  how many of them restate an earlier one and are not counted again, `<label>_sentences` = sentences of each
  sentiment, `themes` = themes found in the report, `<theme>_share` = share of its sentences with that
  theme, `<theme>_sentiment_index` = the sentiment index of those sentences, `rating` = the report's stated
  rating and `rating_evidence` the sentence that states it, `field_<key>` = the header's fields (target
  price, date...: `fintag.data.fields.FIELD_KEYS`); shares and indices empty where there is no
  sentence to count);
  the other columns stay empty. With `--summary_only` the file has the summary columns only. Line breaks
  inside a field are written as spaces so that every record is one line.

Durability: each chunk of reports is written with one write, flush and fsync; only then are the chunk's
report keys appended to the progress file `<out>.progress` (one JSON `ReportKey` per line, again one
write + fsync). A report counts as done when its key is in the progress file AND its records are in the
output, so `repair` can bring back a file left by a crash: it cuts a partial last line and drops the
records of reports that were not recorded as done.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from fintag.data.fields import FIELD_KEYS
from fintag.data.fsutil import atomic_file
from fintag.data.taxonomy import SENTIMENT, THEMES

logger = logging.getLogger(__name__)

# The records' format, recorded beside --out (`<out>.run.json`): --resume refuses a file written in another
# one. 1: before summaries had `title` and `restated` and counted each statement once (2026-12-07); 2: now.
RECORD_FORMAT = 2
STDIN_PATH = "-"
PROGRESS_SUFFIX = ".progress"


class OutputError(Exception):
    """An output that cannot be written or resumed; the message names the file and the fix."""


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class ReportKey:
    """What identifies a finished report in the progress file: its path, size and modification time."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> ReportKey:
        st = os.stat(path)
        return cls(str(path), st.st_size, st.st_mtime_ns)

    def line(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False) + "\n"

    @classmethod
    def parse(cls, line: bytes) -> ReportKey | None:
        try:
            d = json.loads(line)
            return cls(str(d["path"]), int(d["size"]), int(d["mtime_ns"]))
        except (ValueError, KeyError, TypeError):
            return None


def report_records(
    report_id: str, path: str, encoding: str, result: dict[str, Any], summary_only: bool = False
) -> list[dict[str, Any]]:
    """The records of one tagged report (a `Tagger.tag_reports` result): its sentences, then its summary."""
    out: list[dict[str, Any]] = []
    if not summary_only:
        for i, s in enumerate(result["sentences"]):
            out.append(
                {
                    "type": "sentence",
                    "report_id": report_id,
                    "path": path,
                    "sentence_index": i,
                    "start": s["start"],
                    "end": s["end"],
                    "text": s["text"],
                    "text_normalized": s["text_normalized"],
                    "kind": s["kind"],
                    "lang": s["lang"],
                    "sentiment": s["sentiment"],
                    "themes": s["themes"],
                    "rating": s["rating"],
                }
            )
    out.append(
        {
            "type": "summary",
            "report_id": report_id,
            "path": path,
            "encoding": encoding,
            "summary": result["summary"],
        }
    )
    return out


# ---------------------------------------------------------------- formats


class Format(Protocol):
    header: str | None  # the first line on standard output
    file_header: str | None  # the start of an output file (CSV: a UTF-8 BOM for Excel, then the header)

    def line(self, record: dict[str, Any]) -> str: ...

    def path_of(self, line: bytes) -> str:
        """The report path of a written line; raises ValueError when the line is not one of ours."""
        ...

    def is_summary(self, line: bytes) -> bool:
        """Whether a written line is a report's summary record (its last)."""
        ...


class JsonlFormat:
    header: str | None = None
    file_header: str | None = None

    def line(self, record: dict[str, Any]) -> str:
        return json.dumps(record, ensure_ascii=False) + "\n"

    def path_of(self, line: bytes) -> str:
        try:
            return str(json.loads(line)["path"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a fintag JSONL record ({exc})") from exc

    def is_summary(self, line: bytes) -> bool:
        try:
            return json.loads(line).get("type") == "summary"
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return False


SENTENCE_COLUMNS = [
    "type", "report_id", "path", "sentence_index", "start", "end", "kind", "lang", "text", "text_normalized",
    "sentiment", "sentiment_score", "themes", *[f"{t}_score" for t in THEMES.labels],
    "rating", "rating_score",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "type", "report_id", "path", "encoding", "title", "sentences", "restated",
    *[f"{s}_sentences" for s in SENTIMENT.labels],
    "sentiment_index", "themes", *[f"{t}_share" for t in THEMES.labels],
    *[f"{t}_sentiment_index" for t in THEMES.labels], "rating", "rating_score", "rating_evidence",
    *[f"field_{k}" for k in FIELD_KEYS],
]  # fmt: skip
CSV_COLUMNS = list(dict.fromkeys(SENTENCE_COLUMNS + SUMMARY_COLUMNS))


_LINE_BREAKS_RE = re.compile("[\r\n\f\v\x1c\x1d\x1e\x85\u2028\u2029]")  # what str.splitlines splits at


def _one_line(value: Any) -> Any:
    return _LINE_BREAKS_RE.sub(" ", value) if isinstance(value, str) else value


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """A JSONL record as a CSV row (see the module docstring for the columns of each type)."""
    base = {"type": record["type"], "report_id": record["report_id"], "path": record["path"]}
    if record["type"] == "sentence":
        themes = record["themes"]
        return {
            **base,
            **{
                k: record[k]
                for k in ("sentence_index", "start", "end", "kind", "lang", "text", "text_normalized")
            },
            "sentiment": record["sentiment"]["label"],
            "sentiment_score": record["sentiment"]["score"],
            "themes": ";".join(themes["labels"]),
            **{f"{t}_score": themes["scores"][t] for t in THEMES.labels},
            "rating": record["rating"]["label"],
            "rating_score": record["rating"]["score"],
        }
    s = record["summary"]
    return {
        **base,
        "encoding": record["encoding"],
        "title": (s["title"] or {}).get("text"),
        "sentences": s["sentences"],
        "restated": len(s["restated"]),
        **{f"{label}_sentences": s["sentiment_counts"][label] for label in SENTIMENT.labels},
        "sentiment_index": s["sentiment_index"],
        "themes": ";".join(t for t in THEMES.labels if (s["theme_share"][t] or 0.0) > 0),
        **{f"{t}_share": s["theme_share"][t] for t in THEMES.labels},
        **{f"{t}_sentiment_index": s["theme_sentiment_index"][t] for t in THEMES.labels},
        "rating": s["rating"]["label"],
        "rating_score": s["rating"]["score"],
        "rating_evidence": (s["rating"].get("evidence") or {}).get("text"),
        **{f"field_{k}": (s["fields"].get(k) or {}).get("value") for k in FIELD_KEYS},
    }


UTF8_BOM = "\ufeff"


class CsvFormat:
    """`summary_only`: the columns of summary rows only (`SUMMARY_COLUMNS`), none left always empty."""

    def __init__(self, summary_only: bool = False) -> None:
        self.columns = SUMMARY_COLUMNS if summary_only else CSV_COLUMNS
        self.header: str | None = self._row({c: c for c in self.columns})
        # Excel reads a CSV file as the system's code page unless it starts with a BOM: Chinese becomes
        # mojibake. Files get one (as the page's CSV download does); standard output does not.
        self.file_header: str | None = UTF8_BOM + self.header
        self._path_col = self.columns.index("path")

    def _row(self, row: dict[str, Any]) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        writer.writerow({k: _one_line(v) for k, v in row.items()})
        return buf.getvalue()

    def line(self, record: dict[str, Any]) -> str:
        return self._row(flatten(record))

    def path_of(self, line: bytes) -> str:
        try:
            row = next(csv.reader([line.decode("utf-8")]))
            return row[self._path_col]
        except (UnicodeDecodeError, csv.Error, StopIteration, IndexError) as exc:
            raise ValueError(f"not a fintag CSV row ({exc})") from exc

    def is_summary(self, line: bytes) -> bool:
        try:
            return next(csv.reader([line.decode("utf-8")]))[0] == "summary"
        except (UnicodeDecodeError, csv.Error, StopIteration, IndexError):
            return False


FORMATS: dict[str, Callable[[bool], Format]] = {
    "jsonl": lambda summary_only: JsonlFormat(),
    "csv": lambda summary_only: CsvFormat(summary_only),
}


# ---------------------------------------------------------------- sinks


class StdoutSink:
    """Records to standard output (no progress file: a run to stdout cannot be resumed)."""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        if fmt.header:
            self._emit(fmt.header)

    @staticmethod
    def _emit(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def write_chunk(self, records: list[dict[str, Any]], keys: list[ReportKey]) -> None:
        if records:
            self._emit("".join(self.fmt.line(r) for r in records))

    def close(self) -> None:
        return None


def progress_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{path}{PROGRESS_SUFFIX}")


def _durable_write(fh: IO[bytes], data: bytes) -> None:
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def unwritable(path: Path, exc: OSError) -> str:
    """Why `path` could not be written: a file where a folder on its path should be ("afile/out.jsonl";
    mkdir says only "File exists"), else the system's reason."""
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    return f"{blocking} is a file, not a folder" if blocking else str(exc.strerror or exc)


class FileSink:
    """Records to a file, a chunk at a time, each chunk durable before its reports are recorded as done."""

    def __init__(self, path: str | os.PathLike[str], fmt: Format, append: bool) -> None:
        self.path = Path(path)
        self.fmt = fmt
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.path.open("ab" if append else "wb")
            self._progress = progress_path(self.path).open("ab" if append else "wb")
            if fmt.file_header and self._out.tell() == 0:
                _durable_write(self._out, fmt.file_header.encode("utf-8"))
        except OSError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: OSError) -> OutputError:
        return OutputError(
            f"cannot write --out {self.path}: {unwritable(self.path, exc)}. Free disk space or choose a "
            "writable --out, then rerun with --resume: reports already recorded as done are kept"
        )

    def write_chunk(self, records: list[dict[str, Any]], keys: list[ReportKey]) -> None:
        """Write a chunk's records, then record its reports as done. A failed write (disk full, I/O
        error) is rolled back, so the output holds only whole records of reports recorded as done."""
        out_size = os.fstat(self._out.fileno()).st_size
        progress_size = os.fstat(self._progress.fileno()).st_size
        try:
            if records:
                _durable_write(self._out, "".join(self.fmt.line(r) for r in records).encode("utf-8"))
            done = [k for k in keys if k.path != STDIN_PATH]
            if done:
                _durable_write(self._progress, "".join(k.line() for k in done).encode("utf-8"))
        except OSError as exc:
            for fh, size in ((self._out, out_size), (self._progress, progress_size)):
                with contextlib.suppress(OSError, ValueError):
                    os.ftruncate(fh.fileno(), size)
                    os.fsync(fh.fileno())
            raise self._error(exc) from exc

    def close(self) -> None:
        for fh in (self._out, self._progress):
            # A buffered write that fails only at close (full disk) leaves nothing half-written:
            # every chunk was already flushed and fsynced.
            with contextlib.suppress(OSError):
                fh.close()


# ---------------------------------------------------------------- resume and merge


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each complete line; a last line without its newline is left out."""
    with path.open("rb") as fh:
        offset = 0
        for raw in fh:  # binary iteration splits on b"\n" only (not on U+2028 inside a JSON string)
            if not raw.endswith(b"\n"):
                return
            yield offset, raw
            offset += len(raw)


def read_progress(path: str | os.PathLike[str]) -> list[ReportKey]:
    """Keys of the complete, valid lines of a progress file (none when it does not exist)."""
    p = progress_path(path)
    if not p.exists():
        return []
    return [k for _, line in _lines(p) if (k := ReportKey.parse(line)) is not None]


def _record_lines(path: Path, fmt: Format) -> Iterator[tuple[int, bytes, str]]:
    """(offset, line, report path) of each complete record line of an output file (header skipped)."""
    for i, (offset, line) in enumerate(_lines(path)):
        if i == 0 and fmt.header is not None:
            continue  # `repair` checked it
        try:
            yield offset, line, fmt.path_of(line)
        except ValueError as exc:
            raise OutputError(
                f"{path}: the complete line at byte {offset} is not a record of this format ({exc}); resume "
                "with the --format the run was started with, or choose another --out"
            ) from exc


def repair(path: str | os.PathLike[str], fmt: Format, current: dict[str, ReportKey]) -> dict[str, ReportKey]:
    """Bring an interrupted output and its progress file back to a consistent state; return the done reports.

    A report is done when its key is in the progress file, its records are in the output, and (when it is
    still an input, `current`) the file has not changed since. A partial last line and the records of
    reports that are not done are removed; so are progress lines of reports that are not done.
    """
    out = Path(path)
    keys = read_progress(out)
    if not out.exists():
        progress_path(out).unlink(missing_ok=True)
        return {}
    header = (fmt.file_header or "").encode("utf-8")
    plain = (fmt.header or "").encode("utf-8")
    with out.open("rb") as fh:
        start = fh.read(len(header))
        if plain and start.startswith(plain):
            header = plain  # a CSV written before files had a BOM: keep it as it is
        head = start[: len(header)]
        fh.seek(len(head))
        has_records = bool(fh.read(1))
    if head != header:
        if not (header.startswith(head) and not has_records):
            raise OutputError(
                f"{out} does not start with the CSV header of `fintag tag --format csv`; resume with the "
                "--format the run was started with, or choose another --out"
            )
        has_records = False  # the header itself was cut short: start the file again
    if has_records and not progress_path(out).exists():
        raise OutputError(
            f"{out} has records but no progress file {progress_path(out)}, so it is not the output of an "
            "interrupted `fintag tag`; choose another --out (or delete the file)"
        )
    # A report counts as written when its summary, its last record, is there (an output cut by hand
    # before it keeps the report's first records only).
    present = {p for _, line, p in _record_lines(out, fmt) if fmt.is_summary(line)} if has_records else set()
    done: dict[str, ReportKey] = {}
    for k in keys:
        if k.path in present and current.get(k.path, k) == k:
            done[k.path] = k
    # Where to cut: after the last line of a done report that comes before any line of a report that is
    # not done. In the usual crash the unfinished lines are all at the end (the last chunk), so truncation
    # is enough; otherwise the file is rewritten.
    size = out.stat().st_size
    end = len(header) if head == header else 0
    seen_undone = False
    rewrite = False
    for offset, line, p in _record_lines(out, fmt) if has_records else ():
        if p not in done:
            seen_undone = True
        elif seen_undone:
            rewrite = True
            break
        else:
            end = offset + len(line)
    if rewrite:
        with atomic_file(out, "wb") as fh:
            fh.write(header)
            for _, line, p in _record_lines(out, fmt):
                if p in done:
                    fh.write(line)
        logger.warning("resume: rewrote %s without the records of reports that were not finished", out)
    elif end < size:
        with out.open("r+b") as fh:
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
        logger.warning("resume: cut %d byte(s) of unfinished records from the end of %s", size - end, out)
    recorded = "".join(k.line() for k in done.values()).encode("utf-8")
    progress = progress_path(out)
    if not progress.exists() or progress.read_bytes() != recorded:  # drops a partial last line and stale keys
        with atomic_file(progress, "wb") as fh:
            fh.write(recorded)
    return done


def merge(
    target: str | os.PathLike[str], sources: Iterable[str | os.PathLike[str]], fmt: Format
) -> dict[str, ReportKey]:
    """Concatenate repaired outputs (in the given order) into `target`, atomically, with their progress.

    A report found in more than one source (a crash between merging and removing the parts) is kept once.
    The sources are removed afterwards; `target` may itself be the first source.
    """
    tgt = Path(target)
    srcs = [Path(s) for s in sources]
    keys: dict[str, ReportKey] = {}
    with atomic_file(tgt, "wb") as fh:
        if fmt.file_header:
            fh.write(fmt.file_header.encode("utf-8"))
        for src in srcs:
            if not src.exists():
                continue
            mine = {k.path: k for k in read_progress(src) if k.path not in keys}
            for _, line, p in _record_lines(src, fmt):
                if p in mine or p == STDIN_PATH:  # a report read from stdin has no progress key
                    fh.write(line)
            keys.update(mine)
    with atomic_file(progress_path(tgt), "wb") as fh:
        fh.write("".join(k.line() for k in keys.values()).encode("utf-8"))
    for src in srcs:
        if src.resolve() != tgt.resolve():
            src.unlink(missing_ok=True)
            progress_path(src).unlink(missing_ok=True)
    return keys
