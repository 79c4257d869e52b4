"""`fintag tag`: tag report files (.txt, .md, .pdf, .html, .docx) or stdin into JSONL or CSV, fast and
resumably.

Reports are read with the project's reader, then tagged `--reports_per_chunk` at a time: the sentences of
a whole chunk go through `Tagger.tag_reports` in one batched pass (sorted by length, padded per batch).
Each chunk's records are made durable before its reports are recorded as done (see `fintag.serve.outputs`),
so `--resume` continues an interrupted run without losing or repeating a record.

Under `accelerate launch --multi_gpu --num_processes N -m fintag.cli tag ...` (on a machine without
GPUs too: there accelerate's `--cpu` flag starts a single process unless MPI is set up) or torchrun, each
process tags its share of the sorted file list into `<out>.part-<rank>`; the main process then merges the
parts into `--out` in input order, atomically. Resuming works with any number of processes: finished
reports are looked up in `<out>` and in every part file left behind. The processes total their counts
through `<out>.stats-<rank>.json` files between barriers (`total_stats`), removed at the end.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fintag.cli.args import UsageError, parse_settings, report_usage_error
from fintag.data.fsutil import write_json
from fintag.data.reader import (
    SUPPORTED_SUFFIXES,
    RawReport,
    ReportReadError,
    iter_report_paths,
    read_report,
    read_report_bytes,
)
from fintag.model.backend import DEFAULT_QUANTIZE
from fintag.model.paths import DEFAULT_CHECKPOINT, folder_stamp
from fintag.serve.outputs import (
    FORMATS,
    RECORD_FORMAT,
    STDIN_PATH,
    FileSink,
    Format,
    OutputError,
    ReportKey,
    StdoutSink,
    merge,
    progress_path,
    read_progress,
    repair,
    report_records,
    unwritable,
)

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_NOTHING_TAGGED = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
PROGRESS_LOG_SECONDS = 30.0
EMPTY_REPORT = "no sentences after normalisation and splitting (EmptyReportError)"


@dataclass
class TagConfig:
    model: str = field(
        default=DEFAULT_CHECKPOINT, metadata={"help": "checkpoint folder (or hub id) to tag with"}
    )
    out: str | None = field(
        default=None,
        metadata={
            "help": "output file (default, or '-': standard output); finished reports are recorded beside it "
            "in <out>.progress, which --resume reads; one run at a time writes it (<out>.lock)"
        },
    )
    format: Literal["jsonl", "csv"] | None = field(
        default=None,
        metadata={
            "help": "jsonl: sentence + summary records; csv: flat rows with a `type` column (default: "
            "from the extension of --out, .csv or .jsonl; jsonl for other names and standard output)"
        },
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "continue an interrupted run into --out, skipping the reports <out>.progress lists"
        },
    )
    stdin: Literal["report", "lines"] = field(
        default="report",
        metadata={
            "help": "what standard input holds: one report (split into sentences) or one sentence per "
            "line (each non-empty line tagged as it is)"
        },
    )
    summary_only: bool = field(default=False, metadata={"help": "write only the per-report summary records"})
    batch_size: int = field(
        default=16,
        metadata={
            "help": "sentences per forward pass (on a CPU, small batches of similar length beat big ones)"
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "tokens per sentence, longer ones truncated (default: the checkpoint's training "
            "max_length, fintag_max_length in its config.json)"
        },
    )
    num_threads: int = field(
        default=0,
        metadata={"help": "torch CPU threads per process (0: the machine's cores shared among processes)"},
    )
    allow_pickle: bool = field(default=False, metadata={"help": "allow pickled (.bin) weights you trust"})
    backend: Literal["auto", "torch", "onnx"] = field(
        default="auto",
        metadata={
            "help": "inference backend: onnx (onnxruntime, CPU), torch, or auto (onnx on a CPU, torch on a "
            "GPU; fintag.model.backend.DEFAULT_CPU_BACKEND)"
        },
    )
    quantize: bool = field(
        default=DEFAULT_QUANTIZE,
        metadata={
            "help": "int8 on CPU (either backend): faster; a few percent of sentences get other labels than "
            "in fp32 (docs/benchmarks.md); the default comes from fintag.model.backend.DEFAULT_QUANTIZE"
        },
    )
    reports_per_chunk: int = field(
        default=32, metadata={"help": "reports tagged per batched pass and written per durable chunk"}
    )

    def __post_init__(self) -> None:
        if self.out == STDIN_PATH:  # `--out -`: standard output, as for the inputs
            self.out = None
        for name in ("batch_size", "max_length", "reports_per_chunk"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.num_threads < 0:
            raise ValueError(f"--num_threads must be 0 (all cores) or more, got {self.num_threads}")
        if self.resume and not self.out:
            raise ValueError("--resume needs --out: a run written to standard output cannot be resumed")
        self.format = output_format(self.out, self.format)


# The format an --out name asks for; other names take --format, or JSONL.
EXTENSION_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def output_format(out: str | None, given: str | None) -> Literal["jsonl", "csv"]:
    """The format of `--out`: from its extension; a `--format` that contradicts it is refused."""
    implied = EXTENSION_FORMATS.get(Path(out).suffix.lower()) if out else None
    if given is not None and implied is not None and given != implied:
        raise ValueError(
            f"--out {out} names a {implied.upper()} file but --format is {given}; drop --format (the "
            f"extension decides) or give --out a .{given} name"
        )
    return "csv" if (given or implied) == "csv" else "jsonl"


class BatchError(Exception):
    """A run that must not start; the message says why and what to do."""


@dataclass
class Stats:
    tagged: int = 0
    sentences: int = 0
    resumed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, other: Stats) -> None:
        self.tagged += other.tagged
        self.sentences += other.sentences
        self.resumed += other.resumed
        self.skipped.update(other.skipped)

    def line(self) -> str:
        reasons = ", ".join(f"{n}× {why}" for why, n in self.skipped.most_common())
        resumed = f" ({self.resumed} more already done before --resume)" if self.resumed else ""
        return (
            f"tagged {self.tagged} report(s), {self.sentences} sentence(s){resumed}; "
            f"skipped {sum(self.skipped.values())}" + (f": {reasons}" if reasons else "")
        )


def _skip(stats: Stats, path: str, problem: str, fix: str, quiet: bool = False) -> None:
    if not quiet:
        logger.warning("skipped %s: %s. %s", path, problem, fix)
    stats.skipped[problem] += 1


# ---------------------------------------------------------------- inputs


# The files a run keeps beside --out: finished reports, settings, the lock, and per-process parts.
_OWN_SUFFIX_RE = re.compile(r"\.(progress|run\.json|lock|part-\d+(\.progress)?|stats-\d+\.json)")


def own_file(path: Path, out: str | None) -> bool:
    """Whether `path` is --out itself or one of the files `fintag tag` keeps beside it: a folder tagged
    into a file inside it must not tag its own output on --resume."""
    if out is None:
        return False
    target = Path(os.path.abspath(out))
    path = Path(os.path.abspath(path))
    if path.parent != target.parent or not path.name.startswith(target.name):
        return False
    rest = path.name[len(target.name) :]
    return not rest or _OWN_SUFFIX_RE.fullmatch(rest) is not None


def _note_other_files(folder: Path, out: str | None) -> None:
    """Say which files of a folder are left out because they are not reports (.docx, .html, ...)."""
    others = Counter(
        f.suffix.lower() or f.name
        for f in folder.rglob("*")
        if f.is_file()
        and f.suffix.lower() not in SUPPORTED_SUFFIXES
        and not f.name.startswith(".")
        and not own_file(f, out)
    )
    if others:
        kinds = ", ".join(f"{n}× {suffix}" for suffix, n in others.most_common(5))
        logger.warning(
            "%s: left out %d file(s) that are not reports (%s); fintag reads %s: convert the others to one "
            "of these to tag them",
            folder, sum(others.values()), kinds, ", ".join(SUPPORTED_SUFFIXES),
        )  # fmt: skip


def collect_inputs(
    inputs: list[str], stats: Stats, quiet: bool = False, out: str | None = None
) -> list[Path]:
    """Files, folders and globs as one sorted list of absolute report paths (a file named twice, as typed
    differently, is one input); an input matching nothing, or a folder without reports, is skipped, and
    so are `out` and the files kept beside it (`own_file`)."""
    found: dict[str, Path] = {}
    for item in inputs:
        try:
            paths = iter_report_paths([item])
        except ReportReadError as exc:
            _skip(stats, exc.path, exc.problem, exc.fix, quiet)
            continue
        if not paths:
            _skip(
                stats,
                item,
                f"the folder holds no report files ({', '.join(SUPPORTED_SUFFIXES)})",
                "check the folder, or pass the files themselves",
                quiet,
            )
        elif Path(item).is_dir() and not quiet:
            _note_other_files(Path(item), out)
        for p in paths:
            absolute = Path(os.path.abspath(p))  # not resolve(): a symbolic link is refused when read
            if own_file(absolute, out):
                if not Path(item).is_dir() and not quiet:
                    logger.warning("%s: left out, it is --out (or a file kept beside it)", item)
                continue
            found.setdefault(str(absolute), absolute)
    return [found[k] for k in sorted(found)]


def report_ids(paths: list[Path]) -> dict[str, str]:
    """A report id per path, unique in the run: the file name without its extension; files of the same
    name are told apart by their path below the folder they share (a/r.txt, b/r.txt: a/r, b/r), and by
    their extension when only that differs (r.txt, r.md)."""
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(p.stem, []).append(p)
    ids: dict[str, str] = {}
    for stem, group in groups.items():
        if len(group) == 1:
            ids[str(group[0])] = stem
            continue
        common = Path(os.path.commonpath([str(p.parent) for p in group]))
        relative = [p.relative_to(common) for p in group]
        bare = [r.with_suffix("").as_posix() for r in relative]
        keep_suffix = len(set(bare)) < len(bare)
        for p, r, b in zip(group, relative, bare):
            ids[str(p)] = r.as_posix() if keep_suffix else b
    return ids


def _read(path: Path, stats: Stats) -> RawReport | None:
    try:
        return read_report(path)
    except ReportReadError as exc:
        _skip(stats, exc.path, exc.problem, exc.fix)
    except OSError as exc:
        _skip(stats, str(path), f"the file cannot be read ({exc.strerror})", "check the file and the disk")
    return None


def read_stdin(stats: Stats) -> RawReport | None:
    """One report from standard input: text in any encoding the reader detects, or a PDF."""
    data = sys.stdin.buffer.read()
    if not data.strip():
        _skip(stats, "<stdin>", "standard input is empty", "pipe a report into it, or pass report files")
        return None
    try:
        raw = read_report_bytes(data, "<stdin>")
    except ReportReadError as exc:
        _skip(stats, exc.path, exc.problem, exc.fix)
        return None
    return RawReport("stdin", STDIN_PATH, raw.text, raw.encoding)


def _current_keys(paths: list[Path]) -> dict[str, ReportKey]:
    keys: dict[str, ReportKey] = {}
    for p in paths:
        try:
            keys[str(p)] = ReportKey.of(p)
        except OSError:
            continue  # reading it will fail and say why
    return keys


# ---------------------------------------------------------------- tagging


def tag_chunk(
    tagger: Any,
    raws: list[RawReport],
    keys: dict[str, ReportKey],
    sink: Any,
    cfg: TagConfig,
    stats: Stats,
    by_line: bool = False,
) -> None:
    """Tag a chunk of reports in one batched pass and write its records as one durable chunk.

    `by_line`: each non-empty line of a report is one sentence, tagged as it is (`--stdin lines`)."""
    pairs = [(r.report_id, r.text) for r in raws]
    results = (
        (tagger.tag_reports(pairs, by_line=True) if by_line else tagger.tag_reports(pairs)) if raws else []
    )
    records: list[dict[str, Any]] = []
    finished: list[ReportKey] = []
    for raw, result in zip(raws, results, strict=True):
        if not result["sentences"]:
            _skip(
                stats,
                raw.path,
                EMPTY_REPORT,
                "check that it holds report text, not only tables or page furniture",
            )
            continue
        records += report_records(raw.report_id, raw.path, raw.encoding, result, cfg.summary_only)
        finished.append(keys.get(raw.path) or ReportKey(raw.path, len(raw.text), 0))
        stats.tagged += 1
        stats.sentences += len(result["sentences"])
    sink.write_chunk(records, finished)


def tag_files(
    tagger: Any,
    paths: list[Path],
    keys: dict[str, ReportKey],
    done: dict[str, ReportKey],
    sink: Any,
    cfg: TagConfig,
    show_bar: bool,
    ids: dict[str, str] | None = None,
) -> Stats:
    """Tag the reports of `paths` that are not already done (unchanged since), a chunk at a time;
    `ids` gives each path its report id (`report_ids`), else the file name without extension."""
    from tqdm import tqdm

    stats = Stats()
    todo = [p for p in paths if str(p) not in done or done[str(p)] != keys.get(str(p))]
    stats.resumed = len(paths) - len(todo)
    # A bar on a terminal; in a log (nohup, a scheduler) a progress line every PROGRESS_LOG_SECONDS.
    to_log = show_bar and not sys.stderr.isatty()
    last_log = started = time.monotonic()
    with tqdm(total=len(todo), unit="report", disable=None if show_bar else True) as bar:
        for i in range(0, len(todo), cfg.reports_per_chunk):
            chunk = todo[i : i + cfg.reports_per_chunk]
            raws = [
                dataclasses.replace(r, report_id=(ids or {}).get(r.path, r.report_id))
                for r in (_read(p, stats) for p in chunk)
                if r is not None
            ]
            tag_chunk(tagger, raws, keys, sink, cfg, stats)
            bar.update(len(chunk))
            now = time.monotonic()
            if to_log and (now - last_log >= PROGRESS_LOG_SECONDS or i + len(chunk) == len(todo)):
                last_log = now
                logger.info(
                    "%d/%d report(s) done, %d sentence(s), %.0f s", i + len(chunk), len(todo),
                    stats.sentences, now - started,
                )  # fmt: skip
    return stats


# ---------------------------------------------------------------- destinations


def part_path(out: str, rank: int) -> Path:
    return Path(f"{out}.part-{rank}")


def existing_parts(out: str) -> list[Path]:
    """Part files of `out` left on disk, in rank order."""
    base = Path(out)
    ranks = []
    for p in base.parent.glob(f"{base.name}.part-*"):
        suffix = p.name[len(base.name) + len(".part-") :]
        if suffix.isdigit():
            ranks.append(int(suffix))
    return [part_path(out, r) for r in sorted(ranks)]


def check_destination(cfg: TagConfig, num_processes: int, use_stdin: bool) -> None:
    """Refuse, before anything is written, a run that would overwrite or mix outputs."""
    if cfg.out is None:
        if num_processes > 1:
            raise BatchError("several processes need --out (each writes a part file that is merged into it)")
        return
    if use_stdin and num_processes > 1:
        raise BatchError("standard input is read by one process only; run without `accelerate launch`")
    if Path(cfg.out).is_dir():
        raise BatchError(f"--out {cfg.out} is a folder; pass a file path")
    if cfg.resume:
        return
    if Path(cfg.out).exists():
        raise BatchError(
            f"{cfg.out} exists; pass --resume to continue an interrupted run into it, or choose another --out"
        )
    parts = existing_parts(cfg.out)
    if parts:
        raise BatchError(
            f"{parts[0]} is left from an interrupted multi-process run into {cfg.out}; pass --resume to "
            "continue it, or delete the part files"
        )


def prepare_resume(
    cfg: TagConfig, fmt: Format, state: Any, current: dict[str, ReportKey]
) -> dict[str, ReportKey]:
    """Repair `--out` and every part file (main process), then read which reports are done (every process)."""
    assert cfg.out is not None
    if state.is_main_process:
        for path in [Path(cfg.out), *existing_parts(cfg.out)]:
            repair(path, fmt, current)
    state.wait_for_everyone()
    done: dict[str, ReportKey] = {}
    for path in [Path(cfg.out), *existing_parts(cfg.out)]:
        done.update({k.path: k for k in read_progress(path)} if path.exists() else {})
    return done


def run_settings_path(out: str) -> Path:
    return Path(f"{out}.run.json")


def run_settings(cfg: TagConfig) -> dict[str, Any]:
    """The settings that decide what a run writes: a resumed run must repeat them. `checkpoint` stamps the
    model folder's files (`folder_stamp`), so a checkpoint retrained or replaced in place under the same
    path counts as another model."""
    model = Path(cfg.model)
    stamp = folder_stamp(model)
    return {
        "model": str(model.resolve()) if model.exists() else cfg.model,
        "checkpoint": [list(s) for s in stamp] if stamp is not None else None,
        "summary_only": cfg.summary_only,
        "max_length": effective_max_length(cfg),
        "quantize": cfg.quantize,
        "stdin": cfg.stdin,
        "record_format": RECORD_FORMAT,
    }


def _local_config(cfg: TagConfig) -> dict[str, Any] | None:
    """The checkpoint's config.json when --model is a local checkpoint folder; None for a hub id, or a
    folder the load will refuse with its own message (a run folder, named with its model/)."""
    from fintag.model.paths import ModelPathError, resolve_model

    try:
        source, local = resolve_model(cfg.model)
        return json.loads((Path(source) / "config.json").read_text(encoding="utf-8")) if local else None
    except (ModelPathError, OSError, ValueError):
        return None


def effective_max_length(cfg: TagConfig) -> int | None:
    """The tokens per sentence a run truncates at: --max_length, else the checkpoint's training length
    (`Tagger.load`'s default); None where a hub checkpoint's config is not at hand."""
    if cfg.max_length is not None:
        return cfg.max_length
    from fintag.model.labels import trained_max_length

    config = _local_config(cfg)
    return None if config is None else trained_max_length(config)


def check_max_length(cfg: TagConfig) -> None:
    """Refuse a --max_length beyond a local checkpoint's positions from its config.json alone (the tagger
    refuses it again at load, for hub ids); `TaggerSettingsError`, as the tagger's."""
    from fintag.model.presets import usable_positions
    from fintag.serve.tagger import TaggerSettingsError, max_length_problem

    config = _local_config(cfg) if cfg.max_length is not None else None
    problem = max_length_problem(cfg.max_length, usable_positions(config)) if config else None
    if problem:
        raise TaggerSettingsError(problem)


def check_run_settings(cfg: TagConfig) -> None:
    """On --resume refuse settings other than the first run's: one output file would mix two models'
    labels, or summaries with and without their sentences. Read-only; every process checks, so all of
    them stop together. A setting the first run did not record (an older fintag) is not compared."""
    assert cfg.out is not None
    path, mine = run_settings_path(cfg.out), run_settings(cfg)
    if not (cfg.resume and path.exists()):
        return
    first = json.loads(path.read_text(encoding="utf-8"))
    if (
        first.get("model") == mine["model"]
        and first.get("checkpoint", mine["checkpoint"]) != mine["checkpoint"]
    ):
        raise BatchError(
            f"--resume into {cfg.out}: the checkpoint {cfg.model} has changed since the run that wrote it "
            "began (its files were retrained or replaced); the output would mix two models' labels. Tag "
            "into another --out, or start over without --resume after deleting it"
        )
    if first.get("record_format", 1) != RECORD_FORMAT:  # a run.json without it is format 1's
        raise BatchError(
            f"--resume into {cfg.out}: it was written by another fintag version, whose records differ from "
            f"this one's (record format {first.get('record_format', 1)} then, {RECORD_FORMAT} now); one file "
            "would mix the two. Tag into another --out, or start over without --resume after deleting it"
        )
    changed = [
        f"--{k} {first.get(k)!r} then, {v!r} now"
        for k, v in mine.items()
        if k not in ("checkpoint", "record_format") and k in first and first[k] != v
    ]
    if changed:
        raise BatchError(
            f"--resume into {cfg.out} with other settings than the run that wrote it "
            f"({'; '.join(changed)}); resume with the same settings (recorded in {path}), or tag into "
            "another --out"
        )


def record_run_settings(cfg: TagConfig) -> None:
    """Write this run's settings beside `--out` (main process, once the output is open)."""
    assert cfg.out is not None
    path = run_settings_path(cfg.out)
    if cfg.resume and path.exists():
        return
    try:
        write_json(path, run_settings(cfg))
    except OSError as exc:
        raise OutputError(
            f"cannot write --out {cfg.out} (its settings file {path.name}): {unwritable(path, exc)}. "
            "Choose a writable --out"
        ) from exc


def _threads(cfg: TagConfig, num_processes: int) -> int:
    """--num_threads, or the machine's cores shared among the processes on it."""
    if cfg.num_threads:
        return cfg.num_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", num_processes))
    return max(1, cores // max(1, local))


def open_sink(cfg: TagConfig, fmt: Format, state: Any) -> StdoutSink | FileSink:
    """Standard output, `--out`, or (one process of several) this process's part file."""
    if cfg.out is None:
        return StdoutSink(fmt)
    mine = part_path(cfg.out, state.process_index) if state.num_processes > 1 else Path(cfg.out)
    return FileSink(mine, fmt, append=cfg.resume)


def stats_path(out: str, rank: int) -> Path:
    return Path(f"{out}.stats-{rank}.json")


def total_stats(cfg: TagConfig, state: Any, stats: Stats) -> Stats:
    """Every process's counts, totalled in every process (so they agree on the exit status).

    The counts travel through one small file per process between two barriers, not an object collective:
    gloo frees the tensors of an all_gather on its own worker thread, and when that came after Python
    had begun shutting down, the process aborted ("terminate called without an active exception") after
    its work was done. A barrier holds no tensors."""
    if state.num_processes == 1:
        return stats
    assert cfg.out is not None  # check_destination: several processes write part files next to --out
    # Not dataclasses.asdict, which rebuilds a Counter from (key, count) pairs and so counts the pairs.
    saved = {"tagged": stats.tagged, "sentences": stats.sentences, "resumed": stats.resumed}
    write_json(stats_path(cfg.out, state.process_index), {**saved, "skipped": dict(stats.skipped)})
    state.wait_for_everyone()
    total = Stats()
    for rank in range(state.num_processes):
        saved = json.loads(stats_path(cfg.out, rank).read_text(encoding="utf-8"))
        total.add(Stats(**{**saved, "skipped": Counter(saved["skipped"])}))
    state.wait_for_everyone()  # every process has read every file before they are removed
    if state.is_main_process:  # also any left by a crashed run with more processes
        out = Path(cfg.out)
        for path in out.parent.glob(f"{glob.escape(out.name)}.stats-*.json"):
            path.unlink(missing_ok=True)
    return total


def finish(cfg: TagConfig, fmt: Format, state: Any, stats: Stats) -> Stats:
    """After every process is done: total the counts; merge the part files into --out (main process).

    Every process has closed its part file by then: total_stats waits for all of them."""
    total = total_stats(cfg, state, stats)
    if state.is_main_process and cfg.out is not None:
        parts = existing_parts(cfg.out)
        if parts:
            # Rank order is input order: each process got a contiguous slice of the sorted file list.
            merge(cfg.out, [Path(cfg.out), *parts] if Path(cfg.out).exists() else parts, fmt)
    return total


def remove_empty_run(out: str) -> None:
    """Remove `--out` and its side files after a run that recorded no report as done (its progress file
    empty): they hold nothing, and left in place they would make the retry pass --resume."""
    if progress_path(out).exists() and progress_path(out).stat().st_size > 0:
        return
    for path in (Path(out), progress_path(out), run_settings_path(out)):
        path.unlink(missing_ok=True)


def process_state() -> Any:
    """accelerate's view of the processes: one, unless started by `accelerate launch` / torchrun.

    Without a GPU the processes talk over gloo on the CPU (accelerate's MULTI_CPU), which it only sets
    up when told `cpu=True`; with one, each process tags on its own GPU.
    """
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != state.num_processes:
        raise BatchError(
            f"started as {world} processes (WORLD_SIZE) but accelerate set up {state.num_processes}; they "
            "would all write the same output. Launch with `accelerate launch --multi_gpu --num_processes N` "
            "(CPU-only machines included) or torchrun"
        )
    return state


def run(cfg: TagConfig, inputs: list[str]) -> int:
    state = process_state()
    stats = Stats()
    use_stdin = STDIN_PATH in inputs or (not inputs and not sys.stdin.isatty())
    files = [i for i in inputs if i != STDIN_PATH]
    if not files and not use_stdin:
        raise BatchError(
            "no inputs: pass report files, folders or globs, or pipe a report into standard input"
        )
    check_destination(cfg, state.num_processes, use_stdin)
    release = _lock_for_every_process(cfg, state)
    try:
        return _run_locked(cfg, state, use_stdin, files, stats)
    finally:
        if release is not None:
            release()


def _lock_for_every_process(cfg: TagConfig, state: Any) -> Callable[[], None] | None:
    """The main process locks --out (`lock_output`); under `accelerate launch` it tells the others whether
    it got the lock, so that a refused run stops in every process with the same message instead of leaving
    them waiting for it at the next barrier."""
    if cfg.out is None:
        return None
    release, refused = None, None
    if state.is_main_process:
        try:
            release = lock_output(cfg.out)
        except (BatchError, OutputError) as exc:
            refused = exc
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        (told,) = broadcast_object_list([None if refused is None else str(refused)], from_process=0)
        if told is not None and refused is None:
            refused = BatchError(told)
        if refused is not None:
            # Torn down before the exit, as at the end of a run: left to interpreter shutdown, gloo's
            # thread may free the broadcast's buffers too late and abort the process.
            state.destroy_process_group()
    if refused is not None:
        raise refused
    return release


def lock_output(out: str) -> Callable[[], None]:
    """Hold `<out>.lock` (an OS file lock, which the kernel drops however the process ends) for the run, so
    a second `fintag tag` into the same --out is refused instead of interleaving its records; returns the
    release, which removes the file. Removing it before unlocking is safe: a run that locked the removed
    file finds the path gone or another file there, and locks that instead."""
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): no lock; one run per --out is then up to the user
        return lambda: None
    path = Path(f"{out}.lock")
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(
                f"cannot write --out {out}: {unwritable(path, exc)}. Choose a writable --out"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BatchError(
                f"another `fintag tag` is writing {out} (it holds {path}); wait for it to finish, or tag "
                "into another --out"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file that the run before removed as it finished: lock the one there now

    def release() -> None:
        path.unlink(missing_ok=True)
        os.close(fd)

    return release


def _run_locked(cfg: TagConfig, state: Any, use_stdin: bool, files: list[str], stats: Stats) -> int:
    from fintag.serve.tagger import Tagger

    fmt = FORMATS[cfg.format](cfg.summary_only)
    # Every process expands the inputs (the same sorted list); only the main one reports bad ones.
    paths = collect_inputs(
        files, stats if state.is_main_process else Stats(), quiet=not state.is_main_process, out=cfg.out
    )
    keys = _current_keys(paths)
    if not paths and not use_stdin:
        # Nothing to read (a missing file, an empty folder, a glob that matched nothing): say so before the
        # model loads and before --out exists, so that the corrected command can use the same --out.
        if state.is_main_process:
            logger.error("nothing was tagged: %s", stats.line())
        state.destroy_process_group()  # as at the end of a run: never left to interpreter shutdown
        return EXIT_NOTHING_TAGGED
    check_max_length(cfg)  # before the model loads, as any other flag
    if cfg.out is not None:
        check_run_settings(cfg)  # before the model loads: a refused --resume costs nothing
    state.wait_for_everyone()  # every process has checked the destination before anything is written

    device = None if state.device.type == "cpu" else str(state.device)
    tagger = Tagger.load(
        cfg.model, allow_pickle=cfg.allow_pickle, device=device,
        num_threads=_threads(cfg, state.num_processes), batch_size=cfg.batch_size, max_length=cfg.max_length,
        quantize=cfg.quantize, backend=cfg.backend,
    )  # fmt: skip
    done = prepare_resume(cfg, fmt, state, keys) if cfg.resume else {}
    sink = open_sink(cfg, fmt, state)
    if cfg.out is not None and state.is_main_process:
        try:
            record_run_settings(cfg)
        except OutputError:
            sink.close()
            raise
    try:
        with state.split_between_processes(paths) as mine:
            if state.num_processes > 1:
                logger.info(
                    "process %d of %d: %d report file(s)", state.process_index, state.num_processes, len(mine)
                )
            stats.add(
                tag_files(tagger, mine, keys, done, sink, cfg, state.is_main_process, report_ids(paths))
            )
        if use_stdin and state.is_main_process:
            raw = read_stdin(stats)
            tag_chunk(tagger, [raw] if raw else [], keys, sink, cfg, stats, by_line=cfg.stdin == "lines")
    finally:
        sink.close()
    total = finish(cfg, fmt, state, stats)
    # Tear down the processes' gloo/nccl group before exit rather than leave it to interpreter shutdown.
    state.destroy_process_group()
    nothing = not (total.tagged or total.resumed)
    if nothing and cfg.out is not None and not cfg.resume and state.is_main_process:
        remove_empty_run(cfg.out)  # every input was unreadable: leave no --out that a retry must --resume
    if state.is_main_process:
        # Exit 2 always comes with its reason: the skipped inputs and why.
        (logger.error if nothing else logger.info)(
            "%s%s", "nothing was tagged: " if nothing else "", total.line()
        )
    return EXIT_NOTHING_TAGGED if nothing else EXIT_OK


def _add_inputs(parser: Any) -> None:
    parser.add_argument(
        "inputs",
        nargs="*",
        help="report files (.txt, .md, .pdf, .html, .docx), folders or globs; '-' (or none) reads stdin",
    )


def tag_main(argv: list[str]) -> int:
    """`fintag tag`: exit 0 when anything was tagged, 1 on a model or output error, 2 when nothing was."""
    try:
        cfg, extra = parse_settings((TagConfig,), argv, "tag", _add_inputs)
    except UsageError as exc:
        report_usage_error("tag", exc)
        return EXIT_NOTHING_TAGGED
    from fintag.model.backend import BackendError
    from fintag.model.checkpoint import CheckpointError
    from fintag.model.onnx import OnnxError
    from fintag.model.quantize import QuantizeError
    from fintag.serve.tagger import TaggerSettingsError

    try:
        return run(cfg, list(extra.inputs))
    except KeyboardInterrupt:
        where = (
            f"the reports finished so far are kept in {cfg.out}: rerun the same command with --resume to "
            "tag the rest"
            if cfg.out is not None
            else "standard output holds the reports finished so far; pass --out to make a run resumable"
        )
        logger.error("interrupted; %s", where)
        return EXIT_INTERRUPTED
    except BatchError as exc:
        logger.error("%s", exc)
        return EXIT_NOTHING_TAGGED
    except TaggerSettingsError as exc:  # a flag the model cannot run with, as a wrong flag
        logger.error("%s", exc)
        return EXIT_NOTHING_TAGGED
    except (CheckpointError, QuantizeError, BackendError, OnnxError, OutputError) as exc:
        logger.error("%s", exc)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly, as other Unix tools do.
        # Point stdout at /dev/null so that interpreter shutdown does not flush into the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
