"""`fintag serve --workers N`: N server processes on one port, each with its own model and micro-batcher.

Why: on a CPU, one process whose torch threads take every core shares those cores with its own event
loop, JSON and tokenizer, and between two model calls the cores wait while answers go out and the next
requests come in. N processes with (CPUs / N) torch threads each overlap one worker's HTTP work with
another's model call (`docs/benchmarks.md`, 2 cores, 32 clients: 0.63 to 0.64 of offline throughput
with one worker, 0.77 to 0.82 with two, in the same runs).

How:
- Each worker binds its own listening socket to the port with SO_REUSEPORT, so the kernel spreads new
  connections over the workers (with one shared socket, whichever worker wakes first accepts a whole
  burst). The parent first checks that nothing else listens on the port: SO_REUSEPORT would otherwise
  share it with another server of the same user.
- Workers are spawned (not forked): the parent never loads the model.
- Metrics: prometheus_client's multiprocess mode, in a folder the parent creates and removes; `/metrics`
  from any worker sums all of them (`fintag.serve.metrics.Metrics`).
- SIGTERM or SIGINT to the parent is passed on; every worker finishes its requests in flight and stops.
  When a worker exits by itself (its model failed to load, a crash), the parent stops the others and
  exits 1 with the reason, rather than restarting it in a loop; a supervisor (systemd, Kubernetes)
  restarts the whole server.
- `/readyz` answers for the worker that takes the request; `fintag_model_ready` in `/metrics` is 1 only
  when every worker has its model.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from fintag.serve.settings import ServerSettings, SettingsError

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BACKLOG = 2048


def worker_threads(settings: ServerSettings) -> int:
    """Torch threads of each worker: --num_threads, else the usable CPUs shared out (at least 1)."""
    if settings.num_threads:
        return settings.num_threads
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // settings.workers)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on (a plain bind fails where SO_REUSEPORT would share it)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise SettingsError(
            "--workers > 1 needs SO_REUSEPORT (Linux, macOS, BSD); on this system use --workers 1"
        )
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            from fintag.serve.app import listen_problem

            raise SettingsError(listen_problem(host, port, exc)) from None


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on host:port that other workers' sockets share (SO_REUSEPORT)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def _worker_main(settings: ServerSettings, index: int) -> None:
    """One worker process: its own socket on the shared port, its own app and model; exits with the code."""
    from fintag.cli.main import setup_logging
    from fintag.serve.app import create_app, run_server

    setup_logging()
    sock = listening_socket(settings.host, settings.port)
    logger.info("worker %d (pid %d) listening on %s:%d", index, os.getpid(), settings.host, settings.port)
    sys.exit(run_server(create_app(settings), settings, sockets=[sock]))


class _Supervisor:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.stopping = False
        self.procs: list[BaseProcess] = []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            logger.info("%s: stopping %d workers gracefully", signal.Signals(signum).name, len(self.procs))
        self.stopping = True
        self._signal_workers(signal.SIGTERM)

    def _signal_workers(self, sig: signal.Signals) -> None:
        for proc in self.procs:
            if proc.pid is not None and proc.exitcode is None:
                try:
                    os.kill(proc.pid, sig)
                except ProcessLookupError:
                    pass

    def run(self) -> int:
        from prometheus_client import multiprocess

        threads = worker_threads(self.settings)
        worker_settings = self.settings.model_copy(update={"num_threads": threads, "workers": 1})
        context = multiprocessing.get_context("spawn")
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for index in range(self.settings.workers):
            proc = context.Process(
                target=_worker_main, args=(worker_settings, index), name=f"fintag-worker-{index}"
            )
            proc.start()
            self.procs.append(proc)
        logger.info(
            "started %d workers (%d torch threads each) on %s:%d",
            len(self.procs),
            threads,
            self.settings.host,
            self.settings.port,
        )
        failed: list[str] = []
        running = list(self.procs)
        deadline: float | None = None
        while running:
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self._grace()
            if deadline is not None and time.monotonic() > deadline:
                logger.error("workers still running %.0f s after the stop; killing them", self._grace())
                self._signal_workers(signal.SIGKILL)
                deadline = float("inf")
            # A timeout, so that a stop requested by a signal is noticed even while no worker exits.
            ready = wait([p.sentinel for p in running], timeout=0.5)
            for proc in [p for p in running if p.sentinel in ready]:
                proc.join()
                running.remove(proc)
                multiprocess.mark_process_dead(proc.pid)
                if proc.exitcode != 0:
                    failed.append(f"{proc.name} (pid {proc.pid}) exited with {proc.exitcode}")
                if not self.stopping:
                    logger.error(
                        "%s (pid %d) exited with %s while serving; stopping the other workers",
                        proc.name,
                        proc.pid,
                        proc.exitcode,
                    )
                    self.stopping = True
                    self._signal_workers(signal.SIGTERM)
        if failed:
            logger.error("stopped: %s (the reasons are logged above)", "; ".join(failed))
            return 1
        logger.info("all %d workers stopped", len(self.procs))
        return 0

    def _grace(self) -> float:
        return self.settings.shutdown_timeout_s + 10.0


def run_workers(settings: ServerSettings) -> int:
    """Run `settings.workers` server processes on settings.host:port until SIGTERM/SIGINT; the exit code."""
    check_port_free(settings.host, settings.port)
    from fintag.serve.app import open_reviews

    open_reviews(settings)  # a reviews file no worker could open stops `fintag serve` here, exit 2
    metrics_dir = tempfile.mkdtemp(prefix="fintag-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = metrics_dir  # inherited by the spawned workers
    try:
        return _Supervisor(settings).run()
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(metrics_dir, ignore_errors=True)
