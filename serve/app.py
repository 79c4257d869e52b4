"""The HTTP inference endpoint: `create_app(settings, tagger=None)` and `serve_main(argv)` (`fintag serve`).

Routes (`fintag.serve.routes`): `POST /v1/tag` (one sentence or a list, same shape back), `POST
/v1/tag-report` (split, tag and summarise a report), `POST /v1/reviews` and `GET /v1/reviews` (analysts'
corrections), `POST /v1/read-report` (decode an uploaded file), `GET /healthz`, `GET /readyz` (both take HEAD
too), `GET /metrics` (Prometheus), the analysts' page at `/` and OpenAPI at `/docs` (both served offline).
Sentences of all requests go through one micro-batcher (`fintag.serve.batching`); the response models
(`fintag.serve.schemas`) are generated from the label taxonomy, so the published schema follows it.
`fintag serve --workers N` runs N such servers on one port (`fintag.serve.workers`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from types import FrameType

from fastapi import FastAPI
from fintag.serve.errors import install_error_handlers
from fintag.serve.metrics import Metrics, MetricsMiddleware
from fintag.serve.middleware import BodyLimit, BodyLimitMiddleware
from fintag.serve.reviews import ReviewFileError, ReviewStore
from fintag.serve.routes import health, page, reviews, tag
from fintag.serve.schemas import SentenceTags, TagReportResponse
from fintag.serve.settings import ServerSettings, SettingsError, load_settings, with_default_model
from fintag.serve.state import ServerState
from fintag.serve.tagger import Tagger

__all__ = ["SentenceTags", "TagReportResponse", "create_app", "run_server", "serve_main"]

logger = logging.getLogger(__name__)

ROUTES = (
    "/",
    "/v1/tag",
    "/v1/tag-report",
    "/v1/reviews",
    "/v1/read-report",
    "/healthz",
    "/readyz",
    "/metrics",
)


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


def body_limits(settings: ServerSettings) -> tuple[BodyLimit, dict[str, BodyLimit]]:
    """The body limit of every route (--max_body_bytes, JSON bodies) and of those with their own: the file
    upload's (--max_upload_bytes); each with the advice that fits the route."""
    json_limit = settings.max_body_bytes
    default = BodyLimit(json_limit, "max_body_bytes", "send a smaller body")
    limits = {
        "/v1/tag": BodyLimit(json_limit, "max_body_bytes", "send fewer or shorter texts per request"),
        "/v1/tag-report": BodyLimit(
            json_limit, "max_body_bytes", "send the report in parts, one request each"
        ),
        "/v1/read-report": BodyLimit(
            settings.max_upload_bytes,
            "max_upload_bytes",
            "split the report into smaller files",
            what="the uploaded file",
        ),
    }
    return default, limits


def open_reviews(settings: ServerSettings) -> ReviewStore:
    """The reviews store, opened: a torn last line left by a crash mid-write is cut off; a file that cannot
    be used (not a file, unreadable, a line that is no review) is a `SettingsError` naming it. `fintag serve
    --workers N` checks it so before starting any worker."""
    store = ReviewStore(settings.reviews_file)
    try:
        store.open()
    except ReviewFileError as exc:
        raise SettingsError(f"reviews file {exc}") from exc  # its message starts with the file's path
    except OSError as exc:
        raise SettingsError(
            f"reviews file {settings.reviews_file}: {exc.strerror or exc}; check the path and its "
            "permissions, or pass another --reviews_file"
        ) from exc
    return store


def create_app(settings: ServerSettings, tagger: Tagger | None = None) -> FastAPI:
    """The FastAPI app. With `tagger` it serves that tagger; without, it loads `settings.model` at start-up
    (in a thread: /readyz answers 503 until the model is loaded)."""
    if tagger is None and settings.model is None:
        raise SettingsError("no model: pass --model PATH (a checkpoint folder) or set FINTAG_MODEL")
    store = open_reviews(settings)
    app = FastAPI(
        title="fintag",
        version=_version(),
        description="Sentiment, theme and rating tags for sentences of Chinese broker research reports.",
        lifespan=_lifespan,
        docs_url=None,  # served by fintag.serve.routes.page from local assets, not from a CDN
        redoc_url=None,
    )
    metrics = Metrics()
    app.state.fintag = ServerState(settings=settings, metrics=metrics, reviews=store, tagger=tagger)
    install_error_handlers(app)
    for module in (tag, reviews, health, page):
        app.include_router(module.router(settings))
    page.mount_assets(app)
    default_limit, route_limits = body_limits(settings)
    app.add_middleware(BodyLimitMiddleware, default=default_limit, limits=route_limits)
    known = [path for path in (*ROUTES, page.DOCS_URL, app.openapi_url) if path]
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
        settings = with_default_model(load_settings(argv))
        if settings.workers > 1:
            from fintag.serve.workers import run_workers

            return run_workers(settings)
        app = create_app(settings)
    except SettingsError as exc:
        logger.error("%s", exc)
        return 2
    return run_server(app, settings)


class ListenError(Exception):
    """`fintag serve` cannot listen on --host/--port; the message names the address and the fix."""


def listen_problem(host: str, port: int, exc: OSError) -> str:
    """Why host:port cannot be listened on, and the fix (`fintag serve`, one process or `--workers`)."""
    where = f"cannot listen on {host}:{port}"
    if isinstance(exc, socket.gaierror):
        return (
            f"{where}: --host {host} is not an address or a known host name ({exc.strerror}); pass an "
            "address of this machine, e.g. 127.0.0.1"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where}: port {port} is already in use (another fintag serve, or another program); pass "
            f"another --port, or stop the server that listens on port {port}"
        )
    if exc.errno == errno.EACCES:
        return (
            f"{where}: permission denied (ports below 1024 need privileges); pass a --port of 1024 or above"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{where}: {host} is not an address of this machine; pass one of its addresses as --host "
            "(127.0.0.1: this machine only; 0.0.0.0: every interface)"
        )
    return f"{where}: {exc.strerror or exc}; pass another --host or --port"


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to host:port as uvicorn would bind them (every address `host` resolves to, SO_REUSEADDR,
    IPv6 sockets IPv6-only); `run_server` binds them before the app starts, so an address in use stops
    `fintag serve` before the model loads. Raises `ListenError` naming the address and the fix."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(infos):  # in order, without duplicates
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:  # a family this system lacks (IPv6 turned off): skipped, as asyncio does
                continue
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(listen_problem(host, port, exc)) from exc
    return sockets


def run_server(app: FastAPI, settings: ServerSettings, sockets: list[socket.socket] | None = None) -> int:
    """Serve `app` with uvicorn on settings.host:port (or on `sockets`) until SIGTERM or Ctrl-C; the exit
    code: 0 after a graceful stop, 2 when --host/--port cannot be listened on (checked before the model
    loads), 1 when the model failed to load or the server did not start otherwise."""
    import uvicorn

    if sockets is None:
        # Bound here, before uvicorn runs the app's start-up (which starts loading the model): uvicorn's own
        # bind comes after it, and on failure logs only the OSError, exits 3, and the model load runs on.
        try:
            sockets = bind_sockets(settings.host, settings.port)
        except ListenError as exc:  # exit 2, as with --workers: a --host/--port that cannot be used
            logger.error("%s", exc)
            return 2
        for sock in sockets:
            address, port = sock.getsockname()[:2]
            shown = f"[{address}]" if sock.family == socket.AF_INET6 else address
            logger.info("serving on http://%s:%d (Ctrl-C to stop)", shown, port)
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
    except SystemExit as exc:  # uvicorn's answer to a failed start-up (its messages are logged above)
        logger.error("the server did not start (uvicorn exited with %s; see the messages above)", exc.code)
        return 1
    except OSError as exc:
        if server.started:
            raise
        logger.error("the server did not start: %s", exc)  # listening on the bound sockets failed
        return 1
    finally:
        for sock in sockets:
            sock.close()
    if state.load_error is not None:
        logger.error("stopped: %s", state.load_error)
        return 1
    if not server.started:
        logger.error("the server did not start (see the messages above)")
        return 1
    return 0
