"""A bounded load run against a real `fintag serve` (uvicorn) on a loopback address.

1. Takes the seed reports' sentences (data/corpus/*.txt, split with fintag's splitter).
2. Uses --model, or builds a random-weight model of --preset (tokenizer trained on those sentences).
3. Starts `fintag serve` in a subprocess with a deliberately small --max_queue, so that overload shows as
   the documented 429 `{"error": ..., "error_type": "overloaded"}` with `Retry-After`, not as latency that
   grows without bound or as failures.
4. --clients clients share --requests `POST /v1/tag` requests of 1 to 32 sentences (sizes drawn with
   --seed); a client that gets a 429 waits --backoff_ms and sends its next request.
5. Reports requests/s, sentences/s, p50/p99 latency, status counts, the server's resident set size
   (VmRSS) before the load, its peak during it and after it, and whether the server stopped cleanly on
   SIGTERM. Exits 1 when any answer was not 200 or 429, a 429 lacked the documented body, a request
   failed at the transport level, or the server did not stop cleanly.

    python bench/load_run.py                                   # 20,000 requests at 64 clients
    python bench/load_run.py --requests 500 --clients 16 --json_out /tmp/load.json
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import build_random_model, corpus_sentences, free_port, model_counters, wait_ready
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging

logger = logging.getLogger("fintag.bench.load_run")

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


@dataclass
class LoadConfig:
    model: str | None = field(
        default=None, metadata={"help": "checkpoint folder; default: a random-weight model of --preset"}
    )
    preset: str = field(
        default="tiny", metadata={"help": "size of the random-weight model (model/presets.py)"}
    )
    vocab_size: int = field(
        default=3000, metadata={"help": "vocabulary of the tokenizer trained on the corpus"}
    )
    requests: int = field(default=20_000, metadata={"help": "requests in all, shared by the clients"})
    clients: int = field(default=64, metadata={"help": "concurrent clients, each one request at a time"})
    min_sentences: int = field(default=1, metadata={"help": "fewest sentences in a request"})
    max_sentences: int = field(default=32, metadata={"help": "most sentences in a request"})
    max_queue: int = field(
        default=16, metadata={"help": "server --max_queue, deliberately small to show 429s under overload"}
    )
    max_batch_size: int = field(default=128, metadata={"help": "server: most sentences per model call"})
    max_wait_ms: float = field(default=5.0, metadata={"help": "server: longest wait to fill a model call"})
    num_threads: int = field(default=1, metadata={"help": "server torch threads"})
    backoff_ms: float = field(default=20.0, metadata={"help": "a client's pause after a 429"})
    keepalive_expiry_s: float = field(
        default=2.0,
        metadata={"help": "clients drop connections idle this long (keep it below uvicorn's 5 s keep-alive)"},
    )
    seed: int = field(default=0, metadata={"help": "seed of the request sizes and contents"})
    host: str = field(default="127.0.0.1", metadata={"help": "loopback address for the server"})
    startup_timeout_s: float = field(
        default=180.0, metadata={"help": "how long the server may take to start"}
    )
    deadline_s: float = field(
        default=540.0, metadata={"help": "no new request is sent after this many seconds of load (reported)"}
    )
    rss_every_s: float = field(default=0.5, metadata={"help": "how often the server's RSS is sampled"})
    json_out: str | None = field(default=None, metadata={"help": "also write the results as JSON here"})
    server_log: str | None = field(
        default=None, metadata={"help": "keep the server's log here (default: a temporary file)"}
    )

    def check(self) -> None:
        try:
            loopback = self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise SystemExit(f"--host {self.host} is not a loopback address; the load run only uses loopback")
        if self.requests < 1 or self.clients < 1 or self.max_queue < 1:
            raise SystemExit("--requests, --clients and --max_queue must be at least 1")
        if not 1 <= self.min_sentences <= self.max_sentences:
            raise SystemExit("need 1 <= --min_sentences <= --max_sentences")


@dataclass
class Results:
    requests_sent: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    bad_429_bodies: int = 0
    unexpected: list[str] = field(default_factory=list)  # first few bodies of unexpected answers
    latencies_ok: list[float] = field(default_factory=list)
    latencies_all: list[float] = field(default_factory=list)
    sentences_ok: int = 0
    stopped_by_deadline: bool = False
    rss_before_mib: float = 0.0
    rss_peak_mib: float = 0.0
    rss_after_mib: float = 0.0
    model_calls: float = 0.0
    model_sentences: float = 0.0
    server_exit_code: int | None = None

    def summary(self) -> dict[str, Any]:
        ok = self.statuses.get("200", 0)
        return {
            "requests": self.requests_sent,
            "seconds": round(self.seconds, 2),
            "requests_per_s": round(self.requests_sent / self.seconds, 1) if self.seconds else 0.0,
            "ok_sentences_per_s": round(self.sentences_ok / self.seconds, 1) if self.seconds else 0.0,
            "statuses": dict(sorted(self.statuses.items())),
            "share_429": round(self.statuses.get("429", 0) / max(1, self.requests_sent), 4),
            "transport_errors": dict(self.transport_errors),
            "bad_429_bodies": self.bad_429_bodies,
            "unexpected": self.unexpected,
            "p50_ms_ok": _ms(percentile(self.latencies_ok, 0.50)),
            "p99_ms_ok": _ms(percentile(self.latencies_ok, 0.99)),
            "p50_ms_all": _ms(percentile(self.latencies_all, 0.50)),
            "p99_ms_all": _ms(percentile(self.latencies_all, 0.99)),
            "ok_requests": ok,
            "ok_sentences": self.sentences_ok,
            "mean_model_batch": round(self.model_sentences / self.model_calls, 1)
            if self.model_calls
            else None,
            "stopped_by_deadline": self.stopped_by_deadline,
            "rss_before_mib": round(self.rss_before_mib, 1),
            "rss_peak_mib": round(self.rss_peak_mib, 1),
            "rss_after_mib": round(self.rss_after_mib, 1),
            "server_exit_code": self.server_exit_code,
        }

    def passed(self) -> bool:
        return (
            set(self.statuses) <= {"200", "429"}
            and not self.transport_errors
            and self.bad_429_bodies == 0
            and not self.stopped_by_deadline
            and self.server_exit_code == 0
        )


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def rss_mib(pid: int) -> float:
    """Resident set size of a process (VmRSS from /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # the value is in kB
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


def start_server(cfg: LoadConfig, model_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "fintag.cli", "serve",
        "--model", str(model_dir), "--host", cfg.host, "--port", str(port),
        "--num_threads", str(cfg.num_threads), "--max_queue", str(cfg.max_queue),
        "--max_batch_size", str(cfg.max_batch_size), "--max_wait_ms", str(cfg.max_wait_ms),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINTAG_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    logger.info("starting the server on %s:%d (log: %s)", cfg.host, port, log_path)
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def request_inputs(cfg: LoadConfig, texts: list[str], i: int) -> list[str]:
    """The sentences of request `i`: a size and a start drawn from (seed, i), so runs are repeatable."""
    rng = random.Random(cfg.seed * 1_000_003 + i)
    size = rng.randint(cfg.min_sentences, cfg.max_sentences)
    start = rng.randrange(len(texts))
    return [texts[(start + j) % len(texts)] for j in range(size)]


def is_documented_429(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and set(body) == {"error", "error_type"}
        and body["error_type"] == "overloaded"
        and bool(body["error"])
        and response.headers.get("retry-after") == "1"
    )


async def run_load(base: str, texts: list[str], cfg: LoadConfig, results: Results) -> None:
    next_index = 0
    deadline = time.perf_counter() + cfg.deadline_s

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < cfg.requests:
            if time.perf_counter() > deadline:
                results.stopped_by_deadline = True
                return
            i = next_index
            next_index += 1
            inputs = request_inputs(cfg, texts, i)
            started = time.perf_counter()
            try:
                response = await http.post("/v1/tag", json={"inputs": inputs})
            except httpx.HTTPError as exc:
                results.transport_errors[type(exc).__name__] += 1
                if len(results.unexpected) < 5:
                    since = time.perf_counter() - started
                    results.unexpected.append(f"{type(exc).__name__} after {since:.2f} s: {exc!r}")
                continue
            finally:
                results.requests_sent += 1
            elapsed = time.perf_counter() - started
            results.latencies_all.append(elapsed)
            results.statuses[str(response.status_code)] += 1
            if response.status_code == 200:
                results.latencies_ok.append(elapsed)
                results.sentences_ok += len(inputs)
            elif response.status_code == 429:
                if not is_documented_429(response):
                    results.bad_429_bodies += 1
                await asyncio.sleep(cfg.backoff_ms / 1000)
            elif len(results.unexpected) < 5:
                results.unexpected.append(f"{response.status_code}: {response.text[:300]}")

    # A pooled connection left idle for uvicorn's keep-alive timeout (5 s, as long as httpx's default
    # expiry) can be closed by the server just as a client reuses it: the request then dies with a
    # connection reset. Clients should expire idle connections before the server does (--keepalive_expiry_s).
    limits = httpx.Limits(
        max_connections=cfg.clients,
        max_keepalive_connections=cfg.clients,
        keepalive_expiry=cfg.keepalive_expiry_s,
    )
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(cfg.clients)))
        results.seconds = time.perf_counter() - started


def sample_rss(pid: int, every_s: float, stop: threading.Event, results: Results) -> None:
    while not stop.wait(every_s):
        try:
            results.rss_peak_mib = max(results.rss_peak_mib, rss_mib(pid))
        except (OSError, RuntimeError):
            return  # the server is gone; the main thread reports it


def stop_server(proc: subprocess.Popen[bytes], log_path: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        logger.error("the server did not stop within 60 s of SIGTERM; killed it")
        return -9
    if code != 0:
        logger.error("the server exited with %d; log:\n%s", code, log_path.read_text()[-4000:])
    return code


def measure(cfg: LoadConfig, model_dir: Path, texts: list[str], folder: Path) -> Results:
    results = Results()
    port = free_port(cfg.host)
    base = f"http://{cfg.host}:{port}"
    log_path = Path(cfg.server_log) if cfg.server_log else folder / "server.log"
    proc = start_server(cfg, model_dir, port, log_path)
    try:
        wait_ready(base, proc, cfg.startup_timeout_s, log_path)
        with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
            for i in range(4):  # warm-up: the first model calls allocate
                http.post("/v1/tag", json={"inputs": request_inputs(cfg, texts, -1 - i)})
            results.rss_before_mib = results.rss_peak_mib = rss_mib(proc.pid)
            calls_before, sentences_before, _ = model_counters(http)
            stop = threading.Event()
            sampler = threading.Thread(
                target=sample_rss, args=(proc.pid, cfg.rss_every_s, stop, results), daemon=True
            )
            sampler.start()
            try:
                asyncio.run(run_load(base, texts, cfg, results))
            finally:
                stop.set()
                sampler.join()
            results.rss_after_mib = rss_mib(proc.pid)
            results.rss_peak_mib = max(results.rss_peak_mib, results.rss_after_mib)
            calls_after, sentences_after, _ = model_counters(http)
            results.model_calls = calls_after - calls_before
            results.model_sentences = sentences_after - sentences_before
    finally:
        results.server_exit_code = stop_server(proc, log_path)
    log_text = log_path.read_text(errors="replace")
    if "Traceback" in log_text:
        results.unexpected.append("the server log holds a traceback:\n" + log_text[-3000:])
    return results


def format_report(cfg: LoadConfig, summary: dict[str, Any]) -> str:
    lines = [
        f"load run: {summary['requests']} requests from {cfg.clients} clients, "
        f"{cfg.min_sentences}-{cfg.max_sentences} sentences each, server max_queue {cfg.max_queue}, "
        f"{cfg.num_threads} torch thread(s)",
        f"  time {summary['seconds']} s: {summary['requests_per_s']} requests/s, "
        f"{summary['ok_sentences_per_s']} tagged sentences/s, mean model batch {summary['mean_model_batch']}",
        f"  statuses {summary['statuses']} (429 share {summary['share_429']:.1%}); transport errors "
        f"{summary['transport_errors'] or 0}; 429s without the documented body {summary['bad_429_bodies']}",
        f"  latency of 200s: p50 {summary['p50_ms_ok']} ms, p99 {summary['p99_ms_ok']} ms; of all answers: "
        f"p50 {summary['p50_ms_all']} ms, p99 {summary['p99_ms_all']} ms",
        f"  server RSS: {summary['rss_before_mib']} MiB before, {summary['rss_peak_mib']} MiB peak, "
        f"{summary['rss_after_mib']} MiB after; exit code on SIGTERM {summary['server_exit_code']}",
    ]
    if summary["stopped_by_deadline"]:
        lines.append(f"  STOPPED by --deadline_s {cfg.deadline_s} before all requests were sent")
    lines += [f"  unexpected: {u}" for u in summary["unexpected"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    (cfg,) = parse_settings((LoadConfig,), list(sys.argv[1:] if argv is None else argv), Path(__file__).name)
    cfg.check()
    texts = corpus_sentences()
    with tempfile.TemporaryDirectory(prefix="fintag-load-") as tmp:
        folder = Path(tmp)
        model_dir = (
            Path(cfg.model) if cfg.model else build_random_model(cfg.preset, cfg.vocab_size, texts, folder)
        )
        results = measure(cfg, model_dir, texts, folder)
    summary = results.summary()
    sys.stdout.write(format_report(cfg, summary))
    if cfg.json_out:
        Path(cfg.json_out).write_text(
            json.dumps({"config": asdict(cfg), "results": summary}, indent=2) + "\n", encoding="utf-8"
        )
    return 0 if results.passed() and not results.unexpected else 1


if __name__ == "__main__":
    sys.exit(main())
