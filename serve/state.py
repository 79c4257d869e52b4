"""The server's state (settings, metrics, the tagger and its micro-batcher, the reviews store) and the
dependencies routes take from it: the state, a ready batcher, the API key check."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fintag.model.checkpoint import CheckpointError
from fintag.serve.batching import BatchLimits, MicroBatcher
from fintag.serve.errors import ApiError
from fintag.serve.metrics import Metrics
from fintag.serve.reviews import ReviewStore
from fintag.serve.settings import ServerSettings
from fintag.serve.tagger import Tagger

logger = logging.getLogger(__name__)


@dataclass
class ServerState:
    settings: ServerSettings
    metrics: Metrics
    reviews: ReviewStore
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


async def get_state(request: Request) -> ServerState:
    return request.app.state.fintag


StateDep = Annotated[ServerState, Depends(get_state)]


async def ready_batcher(state: StateDep) -> MicroBatcher[dict[str, Any]]:
    if state.batcher is None or not state.batcher.running:
        raise ApiError("unhealthy", state.not_ready_reason())
    return state.batcher


BatcherDep = Annotated[MicroBatcher[dict[str, Any]], Depends(ready_batcher)]

_bearer = HTTPBearer(auto_error=False, description="the server's API key (FINTAG_API_KEY)")


async def require_key(
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
