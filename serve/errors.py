"""The one error body of the HTTP API, `{"error": ..., "error_type": ...}`, and its fixed status table.

Every rejection (our own checks, FastAPI's request validation, Starlette's 404/405, a failed model call)
goes through `error_response`, so clients see one shape and never a stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

# The fixed table from error type to HTTP status.
ERROR_STATUS: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "validation_too_large": 413,
    "validation": 422,
    "overloaded": 429,
    "backend": 500,
    "unhealthy": 503,
}
_TYPE_OF_STATUS = {status: error_type for error_type, status in ERROR_STATUS.items()}
MAX_VALIDATION_MESSAGES = 5
FASTAPI_BODY_ERROR = "There was an error parsing the body"


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong and how to fix it")
    error_type: str = Field(description=f"one of {', '.join(ERROR_STATUS)}")


class ApiError(Exception):
    """A rejection with a type from `ERROR_STATUS`; rendered as the error body by the app's handler."""

    def __init__(self, error_type: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        if error_type not in ERROR_STATUS:
            raise ValueError(f"unknown error type {error_type!r}; add it to ERROR_STATUS")
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.headers = dict(headers or {})

    @property
    def status_code(self) -> int:
        return ERROR_STATUS[self.error_type]


def error_response(error_type: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": message, "error_type": error_type},
        status_code=ERROR_STATUS[error_type],
        headers=dict(headers or {}),
    )


def error_responses(*error_types: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the given error types."""
    return {ERROR_STATUS[t]: {"model": ErrorBody, "description": t} for t in error_types}


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def unparseable_body(detail: str) -> str:
    """The one message for a body that cannot be parsed as JSON (a 400, `bad_request`), whatever the cause."""
    return (
        f"the request body is not valid JSON ({detail}); send a JSON object encoded as UTF-8 with "
        'Content-Type application/json, e.g. {"inputs": ["..."]}'
    )


def _json_invalid_detail(exc: RequestValidationError) -> str | None:
    """What json.loads said of a body FastAPI could not decode (a `json_invalid` error), with where."""
    bad = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if bad is None:
        return None
    detail = str(bad.get("ctx", {}).get("error", "")) or "JSON decode error"
    where = [p for p in bad.get("loc", ()) if isinstance(p, int)]  # FastAPI: ("body", character offset)
    if where:
        detail = f"{detail}{'' if detail.endswith(' at') else ' at'} character {where[0]}"
    return detail


def _undecodable_detail(cause: BaseException | None) -> str:
    """What kept FastAPI from even decoding a body as JSON (its 400 "error parsing the body" hides it)."""
    if isinstance(cause, UnicodeDecodeError):
        return f"not UTF-8: {cause.reason} at byte {cause.start}; GBK or another legacy encoding?"
    if isinstance(cause, RecursionError):
        return "nested too deeply"
    return "not UTF-8, or nested too deeply" if cause is None else type(cause).__name__


def describe_validation(exc: RequestValidationError) -> str:
    """One line naming each bad field and what it should be (the offending values are not echoed)."""
    errors = exc.errors()
    detail = _json_invalid_detail(exc)
    if detail is not None:
        return unparseable_body(detail)
    parts = [f"{_location(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors]
    more = len(parts) - MAX_VALIDATION_MESSAGES
    text = "; ".join(parts[:MAX_VALIDATION_MESSAGES]) + (f"; and {more} more" if more > 0 else "")
    return f"invalid request: {text}"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.error_type, exc.message, exc.headers)


def _not_json_body(request: Request, exc: RequestValidationError) -> str | None:
    """The message for a body that is not JSON at all (a form, text/plain...), naming its Content-Type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return None
    if not any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors()):
        return None
    given = f"Content-Type {content_type}" if content_type else "no Content-Type"
    return (
        f"the request body must be a JSON object sent with Content-Type application/json; this request has "
        f'{given}. Send e.g. {{"inputs": ["..."]}} with the header Content-Type: application/json '
        "(see /docs for each route's body)"
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = _json_invalid_detail(exc)
    if detail is not None:  # not JSON at all: a 400, as for a body json.loads cannot even decode (below)
        return error_response("bad_request", unparseable_body(detail))
    return error_response("validation", _not_json_body(request, exc) or describe_validation(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_type = _TYPE_OF_STATUS.get(exc.status_code)
    if error_type is None:
        # Not in the table: keep the status, still answer with the one error body.
        return JSONResponse(
            {"error": str(exc.detail), "error_type": "http_error"},
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", (exc.headers or {}).get("Allow", ""))
        use = f"use {allowed} " if allowed else ""
        message = (
            f"{request.url.path} does not take {request.method}; {use}(a POST with a JSON body for the /v1 "
            "routes); see /docs for each route's method and body"
        )
    elif exc.status_code == 400 and message == FASTAPI_BODY_ERROR:
        # FastAPI's answer to a body that json.loads cannot even decode (not UTF-8, nested too deep): the
        # same message as for malformed JSON, with the cause FastAPI chained.
        message = unparseable_body(_undecodable_detail(exc.__cause__))
    return error_response(error_type, message, exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's ServerErrorMiddleware calls this and then re-raises, so the traceback reaches the log.
    logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return error_response("backend", f"internal error ({type(exc).__name__}); the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Route every rejection through the one error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
