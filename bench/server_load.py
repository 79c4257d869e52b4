"""Load test of `fintag serve` against offline tagging, on the same machine in the same run.

1. Takes the seed reports' sentences (data/corpus/*.txt, split with fintag's splitter).
2. Uses --model, or builds a random-weight model of --preset (tokenizer trained on those sentences).
3. Offline baseline: `Tagger.tag` on the same sentences with the same torch thread count, in one call
   (the named baseline of the ratio), best of --offline_rounds rounds. For reference it also times
   `Tagger.tag` on consecutive chunks of --max_batch_size sentences: the best a server whose model calls
   hold at most that many can do, since one call over all sentences sorts them all by length and pads
   far less.
4. Starts a real `fintag serve` (uvicorn; --workers processes sharing those threads) on a loopback address
   and, for each client count in --clients, has every client send --requests_per_client requests of
   --sentences_per_request sentences, one at a time, over keep-alive connections. The load generator is
   aiohttp: it shares the machine's cores with the server, and httpx's async client (`--client httpx`)
   spends ~25x more CPU per request at 32 connections.
5. Prints throughput (sentences/s), p50/p99 latency, errors, mean model batch, the time spent in model calls
   per second of the level (summed over workers), sentences per second of model-call time, the load
   generator's CPU per request, and the ratio of server to offline throughput (goal: >= 0.70 at 32 clients).

    python bench/server_load.py --requests_per_client 10
    python bench/server_load.py --workers 2
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import httpx
import torch
from common import build_random_model, corpus_sentences, free_port, model_counters, wait_ready
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging
from fintag.serve.tagger import Tagger

logger = logging.getLogger("bench.server_load")

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 0.70


@dataclass
class BenchConfig:
    model: str | None = field(
        default=None, metadata={"help": "checkpoint folder; default: a random-weight model of --preset"}
    )
    preset: str = field(
        default="small", metadata={"help": "size of the random-weight model (model/presets.py)"}
    )
    vocab_size: int = field(
        default=12000, metadata={"help": "vocabulary of the tokenizer trained on the corpus"}
    )
    clients: list[int] = field(default_factory=lambda: [1, 8, 32], metadata={"help": "concurrency levels"})
    requests_per_client: int = field(
        default=100, metadata={"help": "requests each client sends, one at a time"}
    )
    sentences_per_request: int = field(default=4, metadata={"help": "sentences in each /v1/tag request"})
    num_threads: int | None = field(
        default=None, metadata={"help": "torch threads, offline and in the server (default: torch's choice)"}
    )
    workers: int = field(
        default=1,
        metadata={
            "help": "server processes (`fintag serve --workers`); the torch threads are shared out among them"
        },
    )
    max_batch_size: int = field(default=128, metadata={"help": "server: most sentences per model call"})
    max_wait_ms: float = field(default=5.0, metadata={"help": "server: longest wait to fill a model call"})
    host: str = field(default="127.0.0.1", metadata={"help": "loopback address for the server"})
    port: int = field(default=0, metadata={"help": "server port (0: a free one)"})
    startup_timeout_s: float = field(
        default=180.0, metadata={"help": "how long the server may take to be ready"}
    )
    warmup_requests: int = field(default=8, metadata={"help": "requests sent before measuring"})
    offline_rounds: int = field(
        default=3, metadata={"help": "offline baseline: the best of this many rounds (the machine is noisy)"}
    )
    client: Literal["aiohttp", "httpx"] = field(
        default="aiohttp",
        metadata={
            "help": "load generator: aiohttp, or httpx (its async client spends ~3 ms of CPU per request at "
            "32 connections, taken from the server's cores on a small machine)"
        },
    )

    def check(self) -> None:
        loopback = self.host == "localhost"
        if not loopback:
            try:
                loopback = ipaddress.ip_address(self.host).is_loopback
            except ValueError:
                loopback = False
        if not loopback:
            raise SystemExit(
                f"--host {self.host} is not a loopback address; the benchmark only uses loopback"
            )
        if (
            min(self.clients) < 1
            or min(self.requests_per_client, self.sentences_per_request, self.workers) < 1
        ):
            raise SystemExit(
                "--clients, --requests_per_client, --sentences_per_request and --workers must be positive"
            )


@dataclass
class LevelResult:
    name: str
    requests: int
    sentences: int
    seconds: float
    latencies: list[float]
    errors: int
    model_calls: float = 0.0
    batched_sentences: float = 0.0
    client_cpu_ms: float = 0.0  # load generator CPU per request
    model_seconds: float = 0.0  # time the server's model calls took, summed

    @property
    def throughput(self) -> float:
        return self.sentences / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def offline_throughput(
    model_dir: Path, texts: list[str], num_threads: int, chunk: int, rounds: int
) -> list[LevelResult]:
    """Tagger.tag on all texts in one call (the baseline), then on consecutive chunks of `chunk` texts; the
    best of `rounds` rounds of each (the fastest baseline makes the most demanding ratio)."""
    tagger = Tagger.load(model_dir, num_threads=num_threads)
    tagger.tag(texts[:64])  # warm-up: first calls allocate
    whole = chunked = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        tagger.tag(texts)
        whole = min(whole, time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(0, len(texts), chunk):
            tagger.tag(texts[i : i + chunk])
        chunked = min(chunked, time.perf_counter() - started)
    logger.info(
        "offline: %d sentences in %.2f s (one call), %.2f s (calls of %d), best of %d",
        len(texts),
        whole,
        chunked,
        chunk,
        rounds,
    )
    return [
        LevelResult("offline", 1, len(texts), whole, [], 0),
        LevelResult(f"offline/{chunk}", -(-len(texts) // chunk), len(texts), chunked, [], 0),
    ]


def start_server(
    cfg: BenchConfig, model_dir: Path, port: int, num_threads: int, log_path: Path
) -> subprocess.Popen:
    """`fintag serve` with `num_threads` torch threads per worker."""
    max_in_flight = max(cfg.clients)
    command = [
        sys.executable, "-m", "fintag.cli", "serve",
        "--model", str(model_dir), "--host", cfg.host, "--port", str(port),
        "--workers", str(cfg.workers), "--num_threads", str(num_threads),
        "--max_batch_size", str(cfg.max_batch_size),
        "--max_wait_ms", str(cfg.max_wait_ms), "--max_queue", str(4 * max_in_flight),
        "--max_items_per_request", str(max(256, cfg.sentences_per_request)),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINTAG_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    logger.info("starting the server on %s:%d (log: %s)", cfg.host, port, log_path)
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


async def run_level(base: str, texts: list[str], clients: int, cfg: BenchConfig) -> LevelResult:
    n, per = len(texts), cfg.sentences_per_request
    latencies: list[float] = []
    errors = 0
    sent = 0

    async def client(i: int, post: Post) -> None:
        nonlocal errors, sent
        for k in range(cfg.requests_per_client):
            start = ((i * cfg.requests_per_client + k) * per) % n
            batch = [texts[(start + j) % n] for j in range(per)]
            t0 = time.perf_counter()
            try:
                status, text = await post({"inputs": batch})
            except (httpx.HTTPError, aiohttp.ClientError) as exc:
                logger.warning("request failed: %s", exc)
                errors += 1
                continue
            if status != 200:
                logger.warning("status %d: %s", status, text[:200])
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)
            sent += per

    async with _poster(cfg.client, base, clients) as post:
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(i, post) for i in range(clients)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    result = LevelResult(f"{clients}", clients * cfg.requests_per_client, sent, seconds, latencies, errors)
    result.client_cpu_ms = 1000 * cpu / max(1, result.requests)
    return result


Post = Callable[[dict[str, Any]], Awaitable[tuple[int, str]]]


@asynccontextmanager
async def _poster(kind: str, base: str, clients: int) -> AsyncIterator[Post]:
    """`post(json) -> (status, text)` on /v1/tag over `clients` keep-alive connections."""
    if kind == "httpx":
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=120, limits=limits) as http:

            async def post_httpx(body: dict[str, Any]) -> tuple[int, str]:
                response = await http.post("/v1/tag", json=body)
                return response.status_code, response.text

            yield post_httpx
        return
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:

        async def post_aiohttp(body: dict[str, Any]) -> tuple[int, str]:
            async with session.post("/v1/tag", json=body) as response:
                return response.status, await response.text()

        yield post_aiohttp


def stop_server(proc: subprocess.Popen, log_path: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        logger.error("the server did not stop within 60 s of SIGTERM; killed it")
        return
    if code != 0:
        logger.error("the server exited with %d; log:\n%s", code, log_path.read_text()[-4000:])


def format_table(offline: LevelResult, reference: LevelResult, levels: list[LevelResult]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{1000 * v:.1f}"

    header = ["clients", "requests", "sentences/s", "p50 ms", "p99 ms", "errors", "mean batch"]
    rows = [[*header, "model busy", "model sent/s", "client ms/req", "vs offline"]]
    rows.append(["offline", "-", f"{offline.throughput:.1f}", "-", "-", "-", "-", "-", "-", "-", "1.00"])
    rows.append([
        reference.name, "-", f"{reference.throughput:.1f}", "-", "-", "-", reference.name.split("/")[1], "-",
        "-", "-", f"{reference.throughput / offline.throughput:.2f}",
    ])  # fmt: skip
    for r in levels:
        mean_batch = f"{r.batched_sentences / r.model_calls:.1f}" if r.model_calls else "-"
        busy = f"{r.model_seconds / r.seconds:.2f}" if r.seconds else "-"
        model_rate = f"{r.batched_sentences / r.model_seconds:.1f}" if r.model_seconds else "-"
        rows.append([
            r.name, str(r.requests), f"{r.throughput:.1f}", ms(r.percentile(0.5)), ms(r.percentile(0.99)),
            str(r.errors), mean_batch, busy, model_rate, f"{r.client_cpu_ms:.2f}",
            f"{r.throughput / offline.throughput:.2f}",
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    (cfg,) = parse_settings((BenchConfig,), list(sys.argv[1:] if argv is None else argv), Path(__file__).name)
    cfg.check()
    num_threads = cfg.num_threads or torch.get_num_threads()
    per_worker = max(1, num_threads // cfg.workers)  # the server's workers share the offline threads
    sentences = corpus_sentences()
    total = max(cfg.clients) * cfg.requests_per_client * cfg.sentences_per_request
    texts = [sentences[i % len(sentences)] for i in range(total)]
    logger.info("%d corpus sentences; %d per load level at most", len(sentences), total)

    with tempfile.TemporaryDirectory(prefix="fintag-bench-") as tmp:
        folder = Path(tmp)
        model_dir = (
            Path(cfg.model)
            if cfg.model
            else build_random_model(cfg.preset, cfg.vocab_size, sentences, folder)
        )
        offline, reference = offline_throughput(
            model_dir, texts, num_threads, cfg.max_batch_size, cfg.offline_rounds
        )

        port = cfg.port or free_port(cfg.host)
        base = f"http://{cfg.host}:{port}"
        log_path = folder / "server.log"
        proc = start_server(cfg, model_dir, port, per_worker, log_path)
        levels: list[LevelResult] = []
        try:
            wait_ready(base, proc, cfg.startup_timeout_s, log_path)
            with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
                for i in range(cfg.warmup_requests):  # new connections, so that every worker warms up
                    inputs = texts[i : i + cfg.sentences_per_request]
                    http.post("/v1/tag", json={"inputs": inputs}, headers={"Connection": "close"})
                for clients in cfg.clients:
                    calls_before, sentences_before, seconds_before = model_counters(http)
                    result = asyncio.run(run_level(base, texts, clients, cfg))
                    calls_after, sentences_after, seconds_after = model_counters(http)
                    result.model_calls = calls_after - calls_before
                    result.batched_sentences = sentences_after - sentences_before
                    result.model_seconds = seconds_after - seconds_before
                    logger.info(
                        "%d clients: %.1f sentences/s, %d errors", clients, result.throughput, result.errors
                    )
                    levels.append(result)
        finally:
            stop_server(proc, log_path)

    table = format_table(offline, reference, levels)
    sys.stdout.write(f"\nserver load vs offline Tagger.tag ({num_threads} torch threads offline; server: "
                     f"{cfg.workers} worker(s) x {per_worker} threads; "
                     f"{cfg.sentences_per_request} sentences/request, {cfg.client} client, "
                     f"{cfg.requests_per_client} requests/client)\n{table}\n")  # fmt: skip
    at_most = levels[-1] if levels else None
    if at_most is not None and at_most.throughput / offline.throughput < GOAL_RATIO:
        logger.warning(
            "goal not met: %.2f of offline throughput at %s clients (goal %.2f)",
            at_most.throughput / offline.throughput,
            at_most.name,
            GOAL_RATIO,
        )
    return 1 if any(r.errors for r in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
