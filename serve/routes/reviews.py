"""`POST /v1/reviews` (store an analyst's correction of one sentence) and `GET /v1/reviews` (list them);
both need the API key when one is set."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends
from fintag.serve.errors import ApiError, error_responses
from fintag.serve.reviews import ReviewConflictError, ReviewFileError, make_record
from fintag.serve.routes.tag import json_response
from fintag.serve.schemas import Review, ReviewList, ReviewRequest
from fintag.serve.settings import ServerSettings
from fintag.serve.state import StateDep, require_key

logger = logging.getLogger(__name__)


def router(settings: ServerSettings) -> APIRouter:
    api = APIRouter()
    guarded = [Depends(require_key)] if settings.api_key is not None else []

    @api.post(
        "/v1/reviews",
        response_model=Review,
        status_code=201,
        dependencies=guarded,
        responses=error_responses(
            "bad_request", "unauthorized", "conflict", "validation_too_large", "validation", "backend"
        ),
        summary="Store a correction of one sentence's labels in the reviews file",
    )
    async def add_review(body: ReviewRequest, state: StateDep) -> Any:
        try:
            record = make_record(body.model_dump())
        except ValueError as exc:
            raise ApiError("validation", str(exc)) from exc
        try:
            stored = await state.reviews.append(record)
        except ReviewConflictError as exc:
            raise ApiError("conflict", str(exc)) from exc
        except ReviewFileError as exc:  # a line that is no review was added to the file while serving
            logger.error("cannot append to %s: %s", state.reviews.path, exc)
            raise ApiError("backend", f"the review was not saved: {exc}") from exc
        except OSError as exc:
            logger.error("cannot append to %s: %s", state.reviews.path, exc)
            raise ApiError(
                "backend", f"the review could not be stored ({exc.strerror}); it was not saved, retry"
            ) from exc
        response = json_response(stored)
        response.status_code = 201
        return response

    @api.get(
        "/v1/reviews",
        response_model=ReviewList,
        dependencies=guarded,
        responses=error_responses("unauthorized", "validation", "backend"),
        summary="Every stored review, oldest first (optionally of one report)",
    )
    async def list_reviews(state: StateDep, report_id: str | None = None) -> Any:
        try:
            reviews = await state.reviews.list()
        except ReviewFileError as exc:
            raise ApiError("backend", str(exc)) from exc
        if report_id is not None:
            reviews = [r for r in reviews if r.get("report_id") == report_id]
        return json_response({"count": len(reviews), "reviews": reviews})

    return api
