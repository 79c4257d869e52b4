"""Reliability under faults: batch tagging killed and resumed, full and unwritable disks, clients that
leave or dawdle, a model call that raises, hostile report files, refused checkpoints, and a short load run.

Everything runs on loopback (127.0.0.1) with the tiny random-weight tagger of conftest. The long twins are
marked `slow`; docs/reliability.md records what was run and the figures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fintag.data.reader import read_report
from fintag.data.split import segment
from fintag.data.taxonomy import TAXONOMY
from fintag.model.checkpoint import CheckpointError
from fintag.serve.app import create_app
from fintag.serve.batch import tag_main
from fintag.serve.errors import ERROR_STATUS
from fintag.serve.settings import ServerSettings
from fintag.serve.tagger import Tagger

from .conftest import write_pdf

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINTAG_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _tag(*args: str | Path) -> int:
    return tag_main([str(a) for a in args])


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _chinese(sentences: list[str]) -> list[str]:
    return [s for s in sentences if sum("\u4e00" <= c <= "\u9fff" for c in s) >= 8]


def _write_reports(folder: Path, sentences: list[str], n: int, per: int = 6) -> list[Path]:
    zh = _chinese(sentences)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        start = (i * 5) % (len(zh) - per)
        path = folder / f"r{i:02d}.txt"
        path.write_text("\n".join(zh[start : start + per]) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def _expected_texts(path: Path) -> list[str]:
    return [s.text for s in segment(read_report(path).text).sentences]


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    """`fintag tag` sets torch's thread count for the process; give other tests theirs back."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def report_dir(tmp_path: Path, sentences: list[str]) -> Path:
    folder = tmp_path / "reports"
    _write_reports(folder, sentences, 3)
    return folder


# ---------------------------------------------------------------- batch tagging killed at random points


def _progress_count(progress: Path) -> int:
    return progress.read_bytes().count(b"\n") if progress.exists() else 0


def _kill_runs(
    args: list[str], out: Path, readable: int, kills: int, rng: random.Random, seed: int
) -> list[int]:
    """Start `fintag tag` `kills` times (then with --resume) and SIGKILL each run at a random point
    while it tags: after a random number of further reports, plus a random 0-15 ms. Returns how many
    reports were recorded as done at each kill."""
    progress = Path(f"{out}.progress")
    done_at_kill: list[int] = []
    for k in range(kills):
        already = _progress_count(progress)
        # Leave at least 3 reports after each kill, for the kills still to come and the final --resume.
        high = readable - 3 * (kills - k)
        target = rng.randint(min(already + 1, high), high)
        proc = subprocess.Popen(
            [sys.executable, "-m", "fintag.serve.cli", "tag", *args, "--out", str(out)]
            + (["--resume"] if k else []),
            env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while proc.poll() is None and _progress_count(progress) < target:
                assert time.monotonic() < deadline, f"run {k} made no progress in 180 s (seed {seed})"
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.015))
            finished = proc.poll() is not None
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        assert not finished, f"run {k} finished before its kill at {target} reports (seed {seed})"
        done_at_kill.append(_progress_count(progress))
    return done_at_kill


@pytest.mark.parametrize(
    ("readable", "kills"),
    [
        pytest.param(14, 2, id="14-files-2-kills"),
        pytest.param(40, 3, id="40-files-3-kills", marks=pytest.mark.slow),
    ],
)
def test_repeated_sigkill_then_resume_holds_every_sentence_exactly_once(
    tmp_path, sentences, tiny_checkpoint_dir, readable, kills
):
    folder = tmp_path / "in"
    paths = _write_reports(folder, sentences, readable)
    # Unreadable inputs among them: skipped by every run, never in the output.
    (folder / "r03_empty.txt").write_bytes(b"")
    (folder / "r07_binary.txt").write_bytes(bytes(range(256)) * 8)
    args = [
        str(folder),
        "--model",
        str(tiny_checkpoint_dir),
        "--reports_per_chunk",
        "1",
        "--num_threads",
        "1",
    ]
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    out = tmp_path / "killed.jsonl"

    done_at_kill = _kill_runs(args, out, readable, kills, rng, seed)
    # The first kill lands mid-run (its target leaves 3 reports per kill); a later one may land after the
    # last report but before the run exits (the 0-15 ms jitter), which --resume must handle too.
    assert done_at_kill == sorted(done_at_kill) and done_at_kill[0] < readable, (done_at_kill, seed)

    assert _tag(*args, "--out", out, "--resume") == 0
    reference = tmp_path / "whole.jsonl"
    assert _tag(*args, "--out", reference) == 0
    resumed = _lines(out)
    assert resumed == _lines(reference), f"seed {seed}, killed at {done_at_kill}"
    records = [json.loads(line) for line in resumed]
    by_path: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_path.setdefault(r["path"], []).append(r)
    assert sorted(by_path) == sorted(str(p) for p in paths)  # every readable report, nothing else
    for path in paths:
        mine = by_path[str(path)]
        expected = _expected_texts(path)
        assert [r["text"] for r in mine if r["type"] == "sentence"] == expected  # each sentence once
        assert [r["sentence_index"] for r in mine if r["type"] == "sentence"] == list(range(len(expected)))
        assert [r["type"] for r in mine].count("summary") == 1 and mine[-1]["type"] == "summary"
    progress = _lines(Path(f"{out}.progress"))
    assert sorted(json.loads(line)["path"] for line in progress) == sorted(str(p) for p in paths)


# ---------------------------------------------------------------- full and unwritable disks


def test_out_on_dev_full_is_refused_before_anything_is_written(report_dir, tiny_checkpoint_dir, caplog):
    caplog.set_level(logging.INFO, logger="fintag")
    assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", "/dev/full") == 2
    assert any("/dev/full" in e and "--out" in e for e in _errors(caplog))
    # --resume must not take the device for an interrupted output either.
    caplog.clear()
    assert _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", "/dev/full", "--resume") == 1
    assert any("/dev/full" in e and "progress file" in e for e in _errors(caplog))
    assert not Path("/dev/full.progress").exists()


def _assert_clean_write_failure(code: int, out: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A failed write: exit 1, an error naming --out and what to do, and no half-written output."""
    assert code == 1
    assert any(str(out) in e for e in _errors(caplog)), _errors(caplog)
    assert "Traceback" not in caplog.text
    if out.exists():  # whatever is left must be complete records of reports recorded as done
        data = out.read_bytes()
        assert not data or data.endswith(b"\n")
        if data:  # (the progress file may be /dev/full, which reads as endless zeros)
            done = {json.loads(line)["path"] for line in _lines(Path(f"{out}.progress"))}
            assert {json.loads(line)["path"] for line in data.decode().splitlines()} <= done


def test_disk_full_while_recording_progress_fails_cleanly(tmp_path, report_dir, tiny_checkpoint_dir, caplog):
    out = tmp_path / "out" / "tags.jsonl"
    out.parent.mkdir()
    # The progress file lands on a full disk: its first write raises ENOSPC after the first chunk's
    # records reached --out.
    os.symlink("/dev/full", f"{out}.progress")
    caplog.set_level(logging.INFO, logger="fintag")
    code = _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out, "--reports_per_chunk", "1")
    _assert_clean_write_failure(code, out, caplog)


@pytest.mark.parametrize("where", ["under-a-regular-file", "read-only-folder"])
def test_unwritable_out_fails_cleanly(tmp_path, report_dir, tiny_checkpoint_dir, caplog, where):
    if where == "under-a-regular-file":
        (tmp_path / "afile").write_text("x", encoding="utf-8")
        out = tmp_path / "afile" / "out.jsonl"  # ENOTDIR, even for root
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; the ENOTDIR case covers root")
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        out = locked / "out.jsonl"
    caplog.set_level(logging.INFO, logger="fintag")
    code = _tag(report_dir, "--model", tiny_checkpoint_dir, "--out", out)
    _assert_clean_write_failure(code, out, caplog)
    assert not out.exists()
    if where == "under-a-regular-file":  # names the file in the way, not mkdir's "File exists"
        assert any(f"{tmp_path / 'afile'} is a file, not a folder" in e for e in _errors(caplog))


def _limit_file_size() -> None:
    # Files may not grow past 20,000 bytes: a write beyond fails with EFBIG, like a disk that fills up
    # in the middle of a chunk. Python ignores SIGXFSZ, so the write raises instead of killing.
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@pytest.mark.slow
def test_output_filling_the_disk_mid_chunk_fails_cleanly(tmp_path, sentences, tiny_checkpoint_dir):
    folder = tmp_path / "in"
    _write_reports(folder, sentences, 12)
    out = tmp_path / "tags.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "fintag.serve.cli", "tag", str(folder), "--model", str(tiny_checkpoint_dir),
         "--out", str(out), "--reports_per_chunk", "2", "--num_threads", "1"],
        env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size,
    )  # fmt: skip
    assert done.returncode == 1
    assert str(out) in done.stderr and "Traceback" not in done.stderr
    data = out.read_bytes()
    assert data.endswith(b"\n")  # no half record
    finished = {json.loads(line)["path"] for line in _lines(Path(f"{out}.progress"))}
    assert {json.loads(line)["path"] for line in data.decode().splitlines()} <= finished


# ---------------------------------------------------------------- a live server with faulty clients


class FaultyTagger(Tagger):
    """The tiny tagger; its model call raises when a text holds POISON and takes 1 s when one holds SLOW."""

    POISON = "POISON"
    SLOW = "SLOWMODEL"

    def __init__(self, base: Tagger) -> None:
        super().__init__(base.model, base.tokenizer, base.thresholds)

    def tag_normalized(self, texts: list[str]) -> list[dict[str, Any]]:
        if any(self.POISON in t for t in texts):
            raise RuntimeError("injected model fault")
        if any(self.SLOW in t for t in texts):
            time.sleep(1.0)
        return super().tag_normalized(texts)


@contextmanager
def live_server(app: Any) -> Iterator[int]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a thread; yield the port."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def faulty_port(tagger: Tagger) -> Iterator[int]:
    # 200 ms of batching window: requests sent together share a model call.
    app = create_app(ServerSettings(max_wait_ms=200), FaultyTagger(tagger))
    with live_server(app) as port:
        yield port


def _http_request(port: int, path: str, body: bytes, length: int | None = None) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _assert_answers(port: int, tagger: Tagger, texts: list[str]) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30) as http:
        response = http.post("/v1/tag", json={"inputs": texts})
        assert response.status_code == 200, response.text
        for got, want in zip(response.json(), tagger.tag(texts), strict=True):
            for g in TAXONOMY:
                key = "labels" if g.multi_label else "label"
                assert got[g.name][key] == want[g.name][key]
        assert http.get("/readyz").status_code == 200


def test_clients_leaving_mid_body_or_mid_request_do_not_hurt_others(faulty_port, tagger, sentences, caplog):
    caplog.set_level(logging.INFO)
    body = json.dumps({"inputs": [f"{FaultyTagger.SLOW} {sentences[0]}"]}, ensure_ascii=False).encode()
    # Headers promise 10,000 bytes; 300 arrive; the client is gone.
    with socket.create_connection(("127.0.0.1", faulty_port)) as s:
        s.sendall(_http_request(faulty_port, "/v1/tag", body[:300], length=10_000))
    # Whole requests whose model call takes a second; each client leaves right after sending.
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", faulty_port)) as s:
            s.sendall(_http_request(faulty_port, "/v1/tag", body))
    _assert_answers(faulty_port, tagger, sentences[1:4])
    time.sleep(1.2)  # the abandoned model calls have run; their answers went nowhere
    _assert_answers(faulty_port, tagger, sentences[4:6])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text


def test_a_slow_client_does_not_hold_up_others(faulty_port, tagger, sentences):
    texts = sentences[6:9]
    body = json.dumps({"inputs": texts}, ensure_ascii=False).encode()
    pieces = [body[i : i + len(body) // 10 + 1] for i in range(0, len(body), len(body) // 10 + 1)]
    first_piece_sent = threading.Event()
    sending_done = threading.Event()
    answer: dict[str, Any] = {}

    def slow_client() -> None:
        with socket.create_connection(("127.0.0.1", faulty_port)) as s:
            s.sendall(_http_request(faulty_port, "/v1/tag", b"", length=len(body)))
            for piece in pieces:  # about 2 s for the whole body
                s.sendall(piece)
                first_piece_sent.set()
                time.sleep(0.2)
            sending_done.set()
            answer["status"], answer["body"] = _read_response(s)

    thread = threading.Thread(target=slow_client)
    thread.start()
    answered_meanwhile = 0
    try:
        assert first_piece_sent.wait(10)
        with httpx.Client(base_url=f"http://127.0.0.1:{faulty_port}", trust_env=False, timeout=30) as http:
            while not sending_done.is_set():
                response = http.post("/v1/tag", json={"inputs": sentences[10:12]})
                assert response.status_code == 200
                answered_meanwhile += not sending_done.is_set()
    finally:
        thread.join(timeout=30)
    assert answered_meanwhile >= 2, "other clients waited for the slow one"
    assert answer["status"] == 200
    assert [r["sentiment"]["label"] for r in json.loads(answer["body"])] == [
        r["sentiment"]["label"] for r in tagger.tag(texts)
    ]


def test_a_raising_model_call_fails_only_the_request_that_caused_it(faulty_port, tagger, sentences, caplog):
    caplog.set_level(logging.INFO)
    innocent = [sentences[20:22], sentences[22:25], [sentences[25]]]
    poisoned = [sentences[26], f"{FaultyTagger.POISON} {sentences[27]}"]

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{faulty_port}", trust_env=False, timeout=30
        ) as c:
            return list(
                await asyncio.gather(*(c.post("/v1/tag", json={"inputs": x}) for x in [poisoned, *innocent]))
            )

    bad, *good = asyncio.run(together())
    assert bad.status_code == ERROR_STATUS["backend"]
    assert bad.json()["error_type"] == "backend" and set(bad.json()) == {"error", "error_type"}
    assert "injected model fault" not in bad.text
    for texts, response in zip(innocent, good, strict=True):
        assert response.status_code == 200, response.text
        assert [r["rating"]["label"] for r in response.json()] == [
            r["rating"]["label"] for r in tagger.tag(texts)
        ]
    assert "retrying each request alone" in caplog.text  # they did share the failing call
    _assert_answers(faulty_port, tagger, sentences[30:33])


# ---------------------------------------------------------------- hostile report files


SIMPLIFIED = "公司发布三季度报告，营业收入同比增长百分之二十五。\n算力需求持续旺盛，国产芯片替代进程加快。\n"
TRADITIONAL = "公司發佈三季度報告，營業收入同比增長百分之二十五。\n算力需求持續旺盛，國產芯片替代進程加快。\n"


def test_tagging_a_folder_of_hostile_files_skips_and_counts_each_bad_one(
    tmp_path, tiny_checkpoint_dir, caplog
):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = {
        "plain.txt": lambda p: p.write_text(SIMPLIFIED, encoding="utf-8"),
        "gbk-named.md": lambda p: p.write_bytes(SIMPLIFIED.encode("gbk")),
        "big5.txt": lambda p: p.write_bytes(TRADITIONAL.encode("big5")),
        "text.pdf": lambda p: write_pdf(p, SIMPLIFIED.split()),
        "x.txt/inside.txt": lambda p: p.write_text(SIMPLIFIED, encoding="utf-8"),  # a folder named x.txt
    }
    bad = {
        "zero.txt": (lambda p: p.write_bytes(b""), "empty"),
        "binary.txt": (lambda p: p.write_bytes(bytes(range(256)) * 16), "binary"),
        "utf16-without-bom.txt": (lambda p: p.write_bytes(SIMPLIFIED.encode("utf-16-le")), "binary"),
        "scan.pdf": (lambda p: write_pdf(p, []), "no text layer"),
        "fake.pdf": (lambda p: p.write_bytes(b"GIF89a not a pdf"), "not a PDF"),
        "truncated.pdf": (lambda p: p.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog"), "PDF"),
        "headings.txt": (lambda p: p.write_text("目录\n一、\n", encoding="utf-8"), "no sentences"),
        "link.txt": (lambda p: os.symlink(folder / "plain.txt", p), "symbolic link"),
        "dangling.md": (lambda p: os.symlink(folder / "gone.txt", p), "symbolic link"),
        "pipe.txt": (lambda p: os.mkfifo(p), "not a regular file"),
    }
    for name, make in good.items():
        (folder / name).parent.mkdir(exist_ok=True)
        make(folder / name)
    for name, (make, _) in bad.items():
        make(folder / name)
    (folder / "notes.xlsx").write_bytes(b"PK\x03\x04")  # inside a folder: not a report name, ignored
    explicit_bad = {
        str(tmp_path / "notes.xlsx"): "unsupported file type",
        str(tmp_path / "missing.txt"): "does not exist",
        str(tmp_path / "nothing-*.txt"): "no file matches",
    }
    (tmp_path / "notes.xlsx").write_bytes(b"PK\x03\x04")
    out = tmp_path / "tags.jsonl"
    caplog.set_level(logging.INFO, logger="fintag")

    assert _tag(folder, *explicit_bad, "--model", tiny_checkpoint_dir, "--out", out) == 0

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name, (_, problem) in bad.items():
        assert any(f"skipped {folder / name}:" in w and problem in w for w in warnings), (name, warnings)
    for path, problem in explicit_bad.items():
        assert any(f"skipped {path}:" in w and problem in w for w in warnings), (path, warnings)
    final = caplog.records[-1].getMessage()
    assert f"tagged {len(good)} report(s)" in final and f"skipped {len(bad) + len(explicit_bad)}" in final
    records = [json.loads(line) for line in _lines(out)]
    summaries = {r["path"]: r for r in records if r["type"] == "summary"}
    assert sorted(summaries) == sorted(str(folder / name) for name in good)
    assert summaries[str(folder / "gbk-named.md")]["encoding"] == "gb18030"
    assert summaries[str(folder / "big5.txt")]["encoding"] == "big5"
    wanted = [s.text for s in segment(SIMPLIFIED).sentences]
    for name in good:
        texts = [
            r["text_normalized"]
            for r in records
            if r["type"] == "sentence" and r["path"] == str(folder / name)
        ]
        assert texts == wanted, name  # the same two sentences, whatever the file's encoding or format


# ---------------------------------------------------------------- checkpoints that must not load


def _make_pickled(path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()


def _edit_config(path: Path, edit: Any) -> None:
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    edit(config)
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")


def _truncate_weights(path: Path) -> None:
    weights = path / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 3)  # a copy or export cut short


BAD_CHECKPOINTS: dict[str, tuple[Any, str]] = {
    "pickled": (_make_pickled, "pickled weights"),
    "remote-code": (
        lambda p: _edit_config(p, lambda c: c.update(auto_map={"AutoModel": "evil.Model"})),
        "remote code",
    ),
    "labels": (
        lambda p: _edit_config(
            p, lambda c: c["fintag_label_groups"]["rating"]["labels"].__setitem__(0, "strong_buy")
        ),
        "do not match",
    ),
    "no-weights": (lambda p: (p / "model.safetensors").unlink(), "no weights"),
    "truncated": (_truncate_weights, "damaged or incomplete"),
}


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory, tiny_checkpoint_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-ckpt")
    out = {}
    for kind, (spoil, _) in BAD_CHECKPOINTS.items():
        path = root / kind / "model"
        shutil.copytree(tiny_checkpoint_dir, path)
        spoil(path)
        out[kind] = path
    return out


@pytest.mark.parametrize("kind", list(BAD_CHECKPOINTS))
def test_tagger_load_and_fintag_tag_refuse_bad_checkpoints(
    bad_checkpoints, report_dir, tmp_path, caplog, kind
):
    message = BAD_CHECKPOINTS[kind][1]
    with pytest.raises(CheckpointError, match=message):
        Tagger.load(bad_checkpoints[kind])
    caplog.set_level(logging.INFO, logger="fintag")
    out = tmp_path / "tags.jsonl"
    assert _tag(report_dir, "--model", bad_checkpoints[kind], "--out", out) == 1
    assert any(message in e and str(bad_checkpoints[kind]) in e for e in _errors(caplog))
    assert not out.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", list(BAD_CHECKPOINTS))
def test_serve_main_stops_with_exit_1_when_the_model_is_refused(bad_checkpoints, monkeypatch, caplog, kind):
    """`fintag serve` loads the model after it starts listening; a refused model must stop it (exit 1)
    with the reason, not leave a server that answers 503 forever. In-process: the same code path as the
    command, in a fraction of its start-up time (the subprocess twin is below)."""
    from fintag.serve.app import serve_main

    for name in [k for k in os.environ if k.startswith("FINTAG_")]:
        monkeypatch.delenv(name)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    # Should the server not stop by itself, SIGINT stops it gracefully and the exit code shows it.
    watchdog = threading.Timer(60, lambda: os.kill(os.getpid(), signal.SIGINT))
    caplog.set_level(logging.INFO)
    watchdog.start()
    try:
        started = time.monotonic()
        code = serve_main(["--model", str(bad_checkpoints[kind]), "--port", str(_free_port())])
    finally:
        watchdog.cancel()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert code == 1 and time.monotonic() - started < 60
    assert any(BAD_CHECKPOINTS[kind][1] in e for e in _errors(caplog)), _errors(caplog)


@pytest.mark.parametrize(
    "kinds",
    [
        pytest.param(["labels"], id="labels"),
        pytest.param(list(BAD_CHECKPOINTS), id="all", marks=pytest.mark.slow),
    ],
)
def test_fintag_serve_command_exits_non_zero_on_bad_checkpoints(bad_checkpoints, tmp_path, kinds):
    procs = {}
    for kind in kinds:
        log = (tmp_path / f"{kind}.log").open("wb")
        command = [sys.executable, "-m", "fintag.serve.cli", "serve", "--model", str(bad_checkpoints[kind])]
        command += ["--port", str(_free_port())]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path)
        procs[kind] = (proc, log)
    try:
        for kind, (proc, log) in procs.items():
            try:
                code = proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                code = None
            log.close()
            text = (tmp_path / f"{kind}.log").read_text(errors="replace")
            assert code == 1, f"{kind}: exit {code}\n{text[-2000:]}"
            assert BAD_CHECKPOINTS[kind][1] in text and "Traceback" not in text, text[-2000:]
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_partial_training_checkpoints_are_never_resumed_from(tmp_path):
    from fintag.train.loop import _latest_checkpoint

    state = tmp_path / "run" / "state"
    complete = state / "ckpt-2"
    complete.mkdir(parents=True)
    (complete / "trainer_state.json").write_text("{}", encoding="utf-8")
    (state / "ckpt-4").mkdir()  # killed while accelerate was saving: no trainer_state.json yet
    (state / "ckpt-4" / "model.safetensors").write_bytes(b"partial")
    tmp = state / ".tmp-ckpt-6"  # killed between writing trainer_state.json and the rename
    tmp.mkdir()
    (tmp / "trainer_state.json").write_text("{}", encoding="utf-8")
    assert _latest_checkpoint(state) == complete
    shutil.rmtree(complete)
    assert _latest_checkpoint(state) is None  # start over rather than resume from a partial one
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        Tagger.load(tmp)


# ---------------------------------------------------------------- load


def test_short_load_run_only_answers_200_or_429_and_memory_stays_bounded(tiny_checkpoint_dir, tmp_path):
    """The short twin of `python bench/load_run.py` (20,000 requests, 64 clients; docs/reliability.md)."""
    report = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "load_run.py"), "--model", str(tiny_checkpoint_dir),
         "--requests", "500", "--clients", "16", "--max_queue", "4", "--json_out", str(report)],
        env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    results = json.loads(report.read_text(encoding="utf-8"))["results"]
    assert results["requests"] == 500
    assert set(results["statuses"]) <= {"200", "429"} and results["statuses"].get("200", 0) > 0
    assert results["bad_429_bodies"] == 0 and not results["transport_errors"]
    assert results["server_exit_code"] == 0
    assert results["rss_after_mib"] - results["rss_before_mib"] < 150
