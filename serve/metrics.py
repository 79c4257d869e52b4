"""Prometheus metrics of the server (`Metrics`, in a registry of their own) and the middleware that counts
and times every request (`MetricsMiddleware`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class Metrics:
    """Prometheus metrics in a registry of their own, so several apps (tests) never share counters.

    Under `fintag serve --workers N` (prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR is set)
    every worker writes its values to that folder and `/metrics`, whichever worker answers, sums them:
    counts and histograms over all workers, the queue depth summed over live workers, and ready = 1 only
    when every live worker has its model."""

    def __init__(self) -> None:
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fintag_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fintag_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "fintag_model_batch_size",
            "sentences per model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "fintag_model_call_duration_seconds",
            "duration of one model call",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "fintag_queue_depth",
            "requests waiting for the model",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.ready = Gauge(
            "fintag_model_ready",
            "1 once the model is loaded",
            registry=self.registry,
            multiprocess_mode="livemin",
        )

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.model_seconds.observe(seconds)

    def exposition(self) -> bytes:
        """The text `/metrics` answers: this process's metrics, or every worker's in multiprocess mode."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)


class MetricsMiddleware:
    """Count requests by route and status and time them; unknown paths share the route label 'other'."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in self.routes else "other"
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
