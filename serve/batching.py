"""Micro-batching: sentences from many concurrent requests share one model call.

Requests wait in a FIFO queue. One worker task takes sentences from the head of the queue until the batch
holds `max_batch_size` sentences or `max_batch_tokens` tokens, or the oldest waiting request has waited
`max_wait_ms` while the model was idle; it then runs the model in its own thread (the event loop never
blocks on the model) and hands each request its slice of the results. A request larger than one batch is
spread over several.

Only idle time counts towards `max_wait_ms`: right after a model call the batcher still gives the callers
it just answered up to `max_wait_ms` to send their next requests, so under load batches stay full instead
of splitting into cohorts that alternate (those answered during a call, those queued during it).
A full queue refuses new requests at once (`QueueFullError`) rather than letting latency grow unbounded.
When a model call shared by several requests raises, each request is retried alone, so only the requests
whose own sentences make the model fail get `ModelCallError`.
`close()` stops taking requests, finishes every queued one, then stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

R = TypeVar("R")


class QueueFullError(RuntimeError):
    """The queue already holds `max_queue` requests."""


class BatcherClosedError(RuntimeError):
    """The batcher is not running (not started yet, or shutting down)."""


class ModelCallError(RuntimeError):
    """The model call that held some of this request's sentences raised."""


@dataclass(frozen=True)
class BatchLimits:
    max_batch_size: int = 64
    max_batch_tokens: int = 16384
    max_wait_ms: float = 5.0
    max_queue: int = 256

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_batch_tokens < 1 or self.max_queue < 1 or self.max_wait_ms < 0:
            raise ValueError(f"batch limits must be positive (max_wait_ms may be 0), got {self}")


@dataclass(eq=False)
class _Request(Generic[R]):
    texts: list[str]
    costs: list[int]
    future: asyncio.Future[list[R]]
    arrived: float
    results: list[R | None] = field(default_factory=list)
    dispatched: int = 0  # sentences handed to a model call so far
    answered: int = 0  # sentences whose results came back

    def __post_init__(self) -> None:
        self.results = [None] * len(self.texts)


@dataclass
class _Slice(Generic[R]):
    request: _Request[R]
    start: int
    end: int


class MicroBatcher(Generic[R]):
    """Queue sentences from concurrent callers of `submit` and answer them with shared model calls.

    `predict` takes a list of texts and returns one result per text, in order; it runs in a dedicated
    thread, one call at a time. `cost` counts a text's tokens (the server passes `Tagger.token_count`,
    the model's own tokenizer; the default, characters, suits tests only). `on_batch(size, seconds)` is
    called after each model call and `on_depth(depth)` whenever the number of waiting requests changes
    (for metrics).
    """

    def __init__(
        self,
        predict: Callable[[list[str]], list[R]],
        limits: BatchLimits,
        cost: Callable[[str], int] = len,
        on_batch: Callable[[int, float], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._predict = predict
        self.limits = limits
        self._cost = cost
        self._on_batch = on_batch
        self._on_depth = on_depth
        self._queue: deque[_Request[R]] = deque()
        self._pending_items = 0
        self._pending_cost = 0
        self._arrival = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._idle_since = 0.0  # when the last model call ended
        self._executor: ThreadPoolExecutor | None = None
        self.model_calls = 0

    @property
    def depth(self) -> int:
        """Requests waiting: queued and not yet wholly handed to a model call."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    def start(self) -> None:
        """Start the worker on the running event loop."""
        if self._task is not None:
            raise RuntimeError("the batcher was already started")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fintag-model")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fintag-batcher")
        self._task.add_done_callback(self._worker_done)

    async def submit(self, texts: list[str]) -> list[R]:
        """Results for `texts`, in order, once the model calls holding them have run."""
        if not self.running:
            raise BatcherClosedError("the batcher is not running (starting up or shutting down)")
        if not texts:
            return []
        if len(self._queue) >= self.limits.max_queue:
            raise QueueFullError(f"{len(self._queue)} requests are already waiting (max_queue)")
        request: _Request[R] = _Request(
            texts=list(texts),
            costs=[self._cost(t) for t in texts],
            future=asyncio.get_running_loop().create_future(),
            arrived=time.perf_counter(),
        )
        self._queue.append(request)
        self._pending_items += len(texts)
        self._pending_cost += sum(request.costs)
        self._depth_changed()
        self._arrival.set()
        # If the caller is cancelled (client gone), awaiting cancels the future and the worker skips it.
        return await request.future

    async def close(self) -> None:
        """Refuse new requests, answer every queued one, then stop the worker and its thread."""
        self._closing = True
        self._arrival.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _depth_changed(self) -> None:
        if self._on_depth is not None:
            self._on_depth(len(self._queue))

    # The worker.

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._arrival.clear()
                await self._arrival.wait()
                continue
            await self._wait_for_batch()
            batch = self._take()
            if batch:
                await self._call(batch)

    def _full(self) -> bool:
        return (
            self._pending_items >= self.limits.max_batch_size
            or self._pending_cost >= self.limits.max_batch_tokens
        )

    async def _wait_for_batch(self) -> None:
        """Wait until a batch is full or the oldest request has waited max_wait_ms with the model idle."""
        deadline = max(self._queue[0].arrived, self._idle_since) + self.limits.max_wait_ms / 1000
        while not self._full() and not self._closing:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                return

    def _forget(self, request: _Request[R]) -> None:
        """Drop the undispatched rest of a request from the pending counts."""
        self._pending_items -= len(request.texts) - request.dispatched
        self._pending_cost -= sum(request.costs[request.dispatched :])
        request.dispatched = len(request.texts)

    def _take(self) -> list[_Slice[R]]:
        """Slices of queued requests for one model call, oldest first, within the batch limits."""
        batch: list[_Slice[R]] = []
        size = tokens = 0
        while self._queue and size < self.limits.max_batch_size:
            request = self._queue[0]
            if request.future.done():  # cancelled by its caller, or failed in an earlier model call
                self._forget(request)
                self._queue.popleft()
                continue
            start = end = request.dispatched
            while end < len(request.texts) and size < self.limits.max_batch_size:
                cost = request.costs[end]
                if size and tokens + cost > self.limits.max_batch_tokens:
                    break
                size, tokens, end = size + 1, tokens + cost, end + 1
            if end > start:
                batch.append(_Slice(request, start, end))
                request.dispatched = end
                self._pending_items -= end - start
                self._pending_cost -= sum(request.costs[start:end])
            if request.dispatched < len(request.texts):
                break  # the batch is full; the rest of this request goes in the next one
            self._queue.popleft()
        self._depth_changed()
        return batch

    async def _call(self, batch: list[_Slice[R]]) -> None:
        texts = [t for s in batch for t in s.request.texts[s.start : s.end]]
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self.model_calls += 1
        try:
            try:
                results = await loop.run_in_executor(self._executor, self._predict, texts)
            finally:
                self._idle_since = time.perf_counter()
            if len(results) != len(texts):
                raise ModelCallError(f"the model returned {len(results)} results for {len(texts)} texts")
        except Exception as exc:  # the failure goes to exactly the requests of this batch
            if len({id(s.request) for s in batch}) > 1:
                # One bad input must not fail the other requests it shared the call with: run each
                # request's slice alone, so only the request(s) that make the model raise get the error.
                logger.warning(
                    "model call on %d sentences of %d requests failed (%s); retrying each request alone",
                    len(texts),
                    len(batch),
                    type(exc).__name__,
                )
                for s in batch:
                    if not s.request.future.done():  # skip callers that left meanwhile
                        await self._call([s])
                return
            logger.exception("model call on %d sentences failed", len(texts))
            for s in batch:
                if not s.request.future.done():
                    s.request.future.set_exception(
                        ModelCallError(f"the model call failed ({type(exc).__name__})")
                    )
            return
        if self._on_batch is not None:
            self._on_batch(len(texts), time.perf_counter() - started)
        k = 0
        for s in batch:
            n = s.end - s.start
            request = s.request
            request.results[s.start : s.end] = results[k : k + n]
            request.answered += n
            k += n
            if request.answered == len(request.texts) and not request.future.done():
                request.future.set_result(list(request.results))  # type: ignore[arg-type]

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        """If the worker died of a bug, fail the waiting requests instead of leaving them hanging."""
        if task.cancelled() or task.exception() is None:
            return
        logger.error("the batcher's worker stopped", exc_info=task.exception())
        self._closing = True
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(BatcherClosedError("the batcher's worker stopped"))
        self._depth_changed()
