"""The analysts' page (`GET /` and its assets under `/static`), `POST /v1/read-report` (the page's file
reader: txt/md/pdf/html/docx in any encoding `fintag.data.reader` takes) and the offline API docs at `/docs`
(Swagger UI served from the `swagger-ui-bundle-v2` package, never from a CDN)."""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fintag.data.reader import SUPPORTED_SUFFIXES, RawReport, ReportReadError, check_suffix, read_report_bytes
from fintag.serve.errors import ApiError, error_responses
from fintag.serve.routes.tag import json_response
from fintag.serve.schemas import ReadReportResponse
from fintag.serve.settings import ServerSettings
from fintag.serve.state import require_key

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
DOCS_URL = "/docs"


def _swagger_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def _read_bytes(data: bytes, filename: str) -> RawReport:
    """Decode an uploaded report exactly as `fintag tag` reads a file (same checks, same messages)."""
    check_suffix(filename)
    return read_report_bytes(data, filename)


@functools.cache
def _index_html() -> str:
    """The page, with the kinds of report file it takes (`SUPPORTED_SUFFIXES`, the reader's own list)."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    kinds = " / ".join(SUPPORTED_SUFFIXES)
    return html.replace("__ACCEPT__", ",".join(SUPPORTED_SUFFIXES)).replace("__FILE_KINDS__", kinds)


def router(settings: ServerSettings) -> APIRouter:
    api = APIRouter()
    guarded = [Depends(require_key)] if settings.api_key is not None else []

    # HEAD too: uptime monitors and link checkers ask with it.
    @api.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_index_html())

    @api.post(
        "/v1/read-report",
        response_model=ReadReportResponse,
        dependencies=guarded,
        responses=error_responses("bad_request", "unauthorized", "validation_too_large", "validation"),
        summary="Decode an uploaded report file (the raw bytes as the body; ?filename= names its type)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def read_uploaded(
        request: Request,
        filename: str = Query(min_length=1, max_length=255, description="the file's name, e.g. 003.pdf"),
    ) -> Any:
        data = await request.body()
        name = Path(filename).name
        try:
            report = await asyncio.to_thread(_read_bytes, data, name)
        except ReportReadError as exc:
            raise ApiError("validation", str(exc)) from exc
        return json_response(
            {"report_id": report.report_id, "text": report.text, "encoding": report.encoding}
        )

    return api


def mount_assets(app: FastAPI) -> None:
    """The page's own assets, and Swagger UI's from the installed package, both served by this server."""
    swagger = _swagger_dir()
    # The more specific mount first: Starlette tries mounts in order.
    if swagger is not None:
        app.mount("/static/swagger-ui", StaticFiles(directory=swagger), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if swagger is None:
        logger.warning("swagger-ui-bundle-v2 is missing; /docs is off (pip install swagger-ui-bundle-v2)")
        return

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
        )
