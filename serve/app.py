"""The HTTP inference endpoint: `create_app(settings, tagger=None)` and `serve_main(argv)` (`fintag serve`).

Routes: `POST /v1/tag` (one sentence or a list, same shape back), `POST /v1/tag-report` (split, tag and
summarise a report), `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus), OpenAPI at `/docs`.
Sentences of all requests go through one micro-batcher (`fintag.serve.batching`); the response models
are generated from the label taxonomy, so the published schema follows it. `fintag serve --workers N`
runs N such servers on one port (`fintag.serve.workers`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from types import FrameType
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fintag.data.normalize import normalize_text
from fintag.data.split import segment
from fintag.data.taxonomy import LANGS, RATING, SENTIMENT, TAXONOMY, THEMES, LabelGroup
from fintag.model.checkpoint import CheckpointError
from fintag.serve.batching import (
    BatcherClosedError,
    BatchLimits,
    MicroBatcher,
    ModelCallError,
    QueueFullError,
)
from fintag.serve.errors import ApiError, error_response, error_responses, install_error_handlers
from fintag.serve.settings import ServerSettings, SettingsError, load_settings
from fintag.serve.summary import summarize
from fintag.serve.tagger import Tagger, sentence_results
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

# --- Schemas, generated from the taxonomy -------------------------------------------------------------


def _group_model(group: LabelGroup) -> type[BaseModel]:
    label = Literal[group.labels]  # type: ignore[valid-type]
    scores = (dict[label, float], Field(description="probability of each label"))  # type: ignore[valid-type]
    name = "".join(part.title() for part in group.name.split("_"))
    if group.multi_label:
        return create_model(
            f"{name}Tags",
            __doc__=f"{group.description}; labels whose probability reaches its threshold",
            labels=(list[label], ...),  # type: ignore[valid-type]
            scores=scores,
        )
    return create_model(
        f"{name}Tag",
        __doc__=f"{group.description}; the most probable label",
        label=(label, ...),
        score=(float, ...),
        scores=scores,
    )


SentenceTags = create_model(
    "SentenceTags",
    __doc__="Labels of one sentence, one entry per label group of the taxonomy.",
    **{g.name: (_group_model(g), ...) for g in TAXONOMY},  # type: ignore[call-overload]
)
ReportSentence = create_model(
    "ReportSentence",
    __base__=SentenceTags,
    __doc__="A sentence of the report (normalised text, offsets in the original text) and its labels.",
    text=(str, ...),
    start=(int, ...),
    end=(int, ...),
    kind=(str, Field(description="sentence, bullet or heading")),
    lang=(Literal[LANGS], ...),  # type: ignore[valid-type]
)
SentimentLabel = Literal[SENTIMENT.labels]  # type: ignore[valid-type]
ThemeLabel = Literal[THEMES.labels]  # type: ignore[valid-type]
RatingLabel = Literal[RATING.labels]  # type: ignore[valid-type]


class Evidence(BaseModel):
    text: str
    start: int | None
    end: int | None
    score: float


class RatingSummary(BaseModel):
    label: RatingLabel
    score: float | None
    evidence: Evidence | None


class StatedRating(Evidence):
    label: RatingLabel


class ReportSummary(BaseModel):
    sentences: int
    rating: RatingSummary
    ratings_stated: list[StatedRating]
    sentiment_counts: dict[SentimentLabel, int]
    sentiment_index: float | None = Field(description="(positive - negative) / sentences")
    theme_share: dict[ThemeLabel, float]
    theme_sentiment_index: dict[ThemeLabel, float | None]
    evidence: dict[str, list[Evidence]]


class TagReportResponse(BaseModel):
    report_id: str
    sentences: list[ReportSentence]  # type: ignore[valid-type]
    summary: ReportSummary


class TagRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: str | list[str] = Field(
        description="one sentence, or a list of sentences; the answer has the same shape",
        examples=["公司维持买入评级，算力业务收入同比增长。"],
    )


class TagReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="the report's text; it is split with fintag's sentence splitter")
    report_id: str | None = Field(default=None, max_length=200, description="echoed back (default 'report')")


# --- Metrics ---------------------------------------------------------------------------------------------


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


# --- Application state -----------------------------------------------------------------------------------


@dataclass
class ServerState:
    settings: ServerSettings
    metrics: Metrics
    tagger: Tagger | None = None
    batcher: MicroBatcher[dict[str, Any]] | None = None
    load_error: str | None = None
    load_task: asyncio.Task[None] | None = field(default=None, repr=False)
    # Called with the reason when the model fails to load; `fintag serve` uses it to stop (exit 1)
    # instead of running on, never ready.
    on_load_error: Callable[[str], None] | None = field(default=None, repr=False)

    async def attach(self, tagger: Tagger) -> None:
        """Start serving `tagger`: one batcher feeds its model."""
        s = self.settings
        limits = BatchLimits(s.max_batch_size, s.max_batch_tokens, s.max_wait_ms, s.max_queue)
        batcher: MicroBatcher[dict[str, Any]] = MicroBatcher(
            tagger.tag_normalized,
            limits,
            cost=tagger.token_count,
            on_batch=self.metrics.observe_batch,
            on_depth=self.metrics.queue_depth.set,
        )
        batcher.start()
        self.tagger, self.batcher = tagger, batcher
        self.metrics.ready.set(1)

    async def load(self) -> None:
        """Load the model in a thread (the event loop keeps answering /healthz and /readyz meanwhile)."""
        s = self.settings
        started = time.perf_counter()
        logger.info("loading model %s", s.model)
        try:
            tagger = await asyncio.to_thread(
                Tagger.load,
                str(s.model),
                allow_pickle=s.allow_pickle,
                num_threads=s.num_threads,
                quantize=s.quantize,
                backend=s.backend,
                max_tokens=s.model_pass_tokens,
            )
        except (CheckpointError, OSError, ValueError) as exc:
            self._load_failed(f"the model failed to load: {exc}")
            return
        except Exception as exc:  # anything else must not leave a server up that never becomes ready
            logger.exception("unexpected error while loading %s", s.model)
            self._load_failed(f"the model failed to load ({type(exc).__name__}: {exc})")
            return
        await self.attach(tagger)
        logger.info("model %s loaded in %.1f s; ready", s.model, time.perf_counter() - started)

    def _load_failed(self, reason: str) -> None:
        self.load_error = reason
        logger.error("%s", reason)
        if self.on_load_error is not None:
            self.on_load_error(reason)

    def not_ready_reason(self) -> str:
        if self.load_error:
            return self.load_error
        if self.batcher is None:
            return f"the model ({self.settings.model}) is still loading; retry when /readyz answers 200"
        return "the server is shutting down"

    async def close(self) -> None:
        self.metrics.ready.set(0)
        if self.load_task is not None and not self.load_task.done():
            self.load_task.cancel()
        if self.batcher is not None:
            await self.batcher.close()


async def _state(request: Request) -> ServerState:
    return request.app.state.fintag


StateDep = Annotated[ServerState, Depends(_state)]


async def _ready_batcher(state: StateDep) -> MicroBatcher[dict[str, Any]]:
    if state.batcher is None or not state.batcher.running:
        raise ApiError("unhealthy", state.not_ready_reason())
    return state.batcher


BatcherDep = Annotated[MicroBatcher[dict[str, Any]], Depends(_ready_batcher)]

_bearer = HTTPBearer(auto_error=False, description="the server's API key (FINTAG_API_KEY)")


async def _require_key(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    key = state.settings.api_key
    if key is None:
        return
    given = b"" if credentials is None else credentials.credentials.encode()
    if not hmac.compare_digest(given, key.get_secret_value().encode()):
        raise ApiError(
            "unauthorized",
            "missing or wrong API key; send the header `Authorization: Bearer <key>`",
            {"WWW-Authenticate": "Bearer"},
        )


# --- Middleware ------------------------------------------------------------------------------------------


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` (413) before anything parses them: by Content-Length, then by the
    bytes actually received (a missing or understated Content-Length does not get past)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> Response:
        return error_response(
            "validation_too_large",
            f"the request body is {size} bytes; the limit is {self.max_bytes} (max_body_bytes): send fewer "
            "or shorter texts per request",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(declared.decode())(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(f"more than {self.max_bytes}")(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


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


# --- Routes ----------------------------------------------------------------------------------------------


async def _submit(batcher: MicroBatcher[dict[str, Any]], texts: list[str]) -> list[dict[str, Any]]:
    try:
        return await batcher.submit(texts)
    except QueueFullError as exc:
        raise ApiError(
            "overloaded", f"the server is busy: {exc}; retry shortly", {"Retry-After": "1"}
        ) from exc
    except BatcherClosedError as exc:
        raise ApiError("unhealthy", f"{exc}; retry shortly") from exc
    except ModelCallError as exc:
        raise ApiError("backend", f"{exc}; the server log has the details") from exc


def _check_sizes(items: list[str], settings: ServerSettings) -> None:
    if len(items) > settings.max_items_per_request:
        raise ApiError(
            "validation_too_large",
            f"{len(items)} inputs in one request; the limit is {settings.max_items_per_request} "
            "(max_items_per_request): split the list over several requests",
        )
    for i, item in enumerate(items):
        if len(item) > settings.max_chars_per_item:
            raise ApiError(
                "validation_too_large",
                f"input {i} has {len(item)} characters; the limit is {settings.max_chars_per_item} "
                "(max_chars_per_item): send sentences, or send a whole report to /v1/tag-report",
            )


def _normalize_all(items: list[str]) -> list[str]:
    return [normalize_text(x) for x in items]


# Requests with at most this many characters are normalised on the event loop (tens of microseconds);
# a thread hop would cost more than the work. Larger ones go to a thread so the loop never stalls.
INLINE_NORMALIZE_CHARS = 4096


async def _normalize(items: list[str]) -> list[str]:
    if sum(map(len, items)) <= INLINE_NORMALIZE_CHARS:
        return _normalize_all(items)
    return await asyncio.to_thread(_normalize_all, items)


def _json(content: Any) -> Response:
    """A JSON answer serialised by orjson, skipping FastAPI's re-validation of our own output (the
    declared response models still document the schema; tests check answers against them)."""
    return Response(orjson.dumps(content), media_type="application/json")


ROUTES = ("/v1/tag", "/v1/tag-report", "/healthz", "/readyz", "/metrics")


def _router(settings: ServerSettings) -> APIRouter:
    router = APIRouter()
    # Only when a key is set do routes require one, so the OpenAPI document shows what is enforced.
    guarded = [Depends(_require_key)] if settings.api_key is not None else []
    model_errors = (
        "bad_request",
        "unauthorized",
        "validation_too_large",
        "validation",
        "overloaded",
        "backend",
        "unhealthy",
    )

    @router.post(
        "/v1/tag",
        response_model=SentenceTags | list[SentenceTags],  # type: ignore[valid-type]
        dependencies=guarded,
        responses=error_responses(*model_errors),
        summary="Tag one sentence or a list of sentences",
    )
    async def tag(body: TagRequest, state: StateDep, batcher: BatcherDep) -> Any:
        single = isinstance(body.inputs, str)
        items = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        _check_sizes(items, state.settings)
        texts = await _normalize(items)
        empty = [i for i, t in enumerate(texts) if not t]
        if empty:
            raise ApiError(
                "validation", f"input(s) {empty[:10]} are empty after normalisation; send sentences with text"
            )
        results = await _submit(batcher, texts)
        return _json(results[0] if single else results)

    @router.post(
        "/v1/tag-report",
        response_model=TagReportResponse,
        dependencies=guarded,
        responses=error_responses(*model_errors),
        summary="Split a report into sentences, tag each, and summarise",
    )
    async def tag_report(body: TagReportRequest, batcher: BatcherDep) -> Any:
        split = await asyncio.to_thread(segment, body.text)
        if not split.sentences:
            raise ApiError(
                "validation",
                "the report has no sentences after normalisation and filtering; send report text, not only "
                "tables or page furniture",
            )
        tagged = sentence_results(split.sentences, await _submit(batcher, [s.text for s in split.sentences]))
        report_id = body.report_id or "report"
        return _json({"report_id": report_id, "sentences": tagged, "summary": summarize(tagged)})

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="200 once the model is loaded", responses=error_responses("unhealthy"))
    async def readyz(state: StateDep) -> dict[str, str]:
        if state.batcher is None or not state.batcher.running or state.tagger is None:
            raise ApiError("unhealthy", state.not_ready_reason())
        return {"status": "ready", "model": state.tagger.source}

    @router.get("/metrics", dependencies=guarded, summary="Prometheus metrics", response_class=Response)
    async def metrics(state: StateDep) -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


# --- Factory and command ---------------------------------------------------------------------------------


def _version() -> str:
    try:
        return version("fintag")
    except PackageNotFoundError:
        return "0"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServerState = app.state.fintag
    if state.tagger is not None:
        await state.attach(state.tagger)
    else:
        state.load_task = asyncio.create_task(state.load(), name="fintag-load-model")
    try:
        yield
    finally:
        # uvicorn has already let in-flight requests finish; the batcher answers whatever is still queued.
        await state.close()
        logger.info("batcher drained; stopped")


def create_app(settings: ServerSettings, tagger: Tagger | None = None) -> FastAPI:
    """The FastAPI app. With `tagger` it serves that tagger; without, it loads `settings.model` at start-up
    (in a thread: /readyz answers 503 until the model is loaded)."""
    if tagger is None and settings.model is None:
        raise SettingsError("no model: pass --model PATH (a checkpoint folder) or set FINTAG_MODEL")
    app = FastAPI(
        title="fintag",
        version=_version(),
        description="Sentiment, theme and rating tags for sentences of Chinese broker research reports.",
        lifespan=_lifespan,
    )
    metrics = Metrics()
    app.state.fintag = ServerState(settings=settings, metrics=metrics, tagger=tagger)
    install_error_handlers(app)
    app.include_router(_router(settings))
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    known = [path for path in (*ROUTES, app.docs_url, app.openapi_url) if path]
    # Added last, so outermost: it counts every answer, the body limit's 413s included.
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=known)
    return app


class _Stopped(Exception):
    """Raised by our signal handler once uvicorn has shut down gracefully and re-raises the signal."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signal.Signals(signum).name)


def serve_main(argv: list[str]) -> int:
    """`fintag serve`: run the endpoint with uvicorn until SIGTERM or Ctrl-C, then stop gracefully.

    With `--workers N` (N > 1) it runs N server processes instead (`fintag.serve.workers`)."""
    try:
        settings = load_settings(argv)
        if settings.workers > 1:
            from fintag.serve.workers import run_workers

            return run_workers(settings)
        app = create_app(settings)
    except SettingsError as exc:
        logger.error("%s", exc)
        return 2
    return run_server(app, settings)


def run_server(app: FastAPI, settings: ServerSettings, sockets: list[socket.socket] | None = None) -> int:
    """Serve `app` with uvicorn on settings.host:port (or on `sockets`) until SIGTERM or Ctrl-C; the exit
    code: 0 after a graceful stop, 1 when the model failed to load or the server did not start."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # use fintag's logging set-up
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    state: ServerState = app.state.fintag

    def stop_on_load_error(reason: str) -> None:
        server.should_exit = True  # uvicorn checks it about every 0.1 s, then shuts down gracefully

    state.on_load_error = stop_on_load_error
    # uvicorn handles SIGTERM/SIGINT itself (graceful shutdown), then re-raises the signal to the handler
    # that was installed before it: ours turns that into a normal exit instead of death by signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    try:
        server.run(sockets=sockets)
    except _Stopped as stopped:
        logger.info("stopped by %s after a graceful shutdown", stopped)
    if state.load_error is not None:
        logger.error("stopped: %s", state.load_error)
        return 1
    if not server.started:
        logger.error("the server did not start (see the messages above)")
        return 1
    return 0
