"""`POST /v1/tag` (one sentence or a list, same shape back) and `POST /v1/tag-report` (split, tag and
summarise a report)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from fintag.data.normalize import normalize_text
from fintag.data.split import segment
from fintag.serve.batching import BatcherClosedError, MicroBatcher, ModelCallError, QueueFullError
from fintag.serve.errors import ApiError, error_responses
from fintag.serve.schemas import SentenceTags, TagReportRequest, TagReportResponse, TagRequest
from fintag.serve.settings import ServerSettings
from fintag.serve.state import BatcherDep, StateDep, require_key
from fintag.serve.summary import summarize
from fintag.serve.tagger import sentence_results

logger = logging.getLogger(__name__)

MODEL_ERRORS = (
    "bad_request",
    "unauthorized",
    "validation_too_large",
    "validation",
    "overloaded",
    "backend",
    "unhealthy",
)


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


def json_response(content: Any) -> Response:
    """A JSON answer serialised by orjson, skipping FastAPI's re-validation of our own output (the
    declared response models still document the schema; tests check answers against them)."""
    return Response(orjson.dumps(content), media_type="application/json")


def router(settings: ServerSettings) -> APIRouter:
    api = APIRouter()
    # Only when a key is set do routes require one, so the OpenAPI document shows what is enforced.
    guarded = [Depends(require_key)] if settings.api_key is not None else []

    @api.post(
        "/v1/tag",
        response_model=SentenceTags | list[SentenceTags],  # type: ignore[valid-type]
        dependencies=guarded,
        responses=error_responses(*MODEL_ERRORS),
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
        return json_response(results[0] if single else results)

    @api.post(
        "/v1/tag-report",
        response_model=TagReportResponse,
        dependencies=guarded,
        responses=error_responses(*MODEL_ERRORS),
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
        summary = await asyncio.to_thread(summarize, tagged, split.title)  # a long report's takes seconds
        return json_response({"report_id": report_id, "sentences": tagged, "summary": summary})

    return api
