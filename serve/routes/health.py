"""`GET /healthz` (the process is alive), `GET /readyz` (the model is loaded), `GET /metrics` (Prometheus)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from fintag.serve.errors import ApiError, error_responses
from fintag.serve.settings import ServerSettings
from fintag.serve.state import StateDep, require_key
from prometheus_client import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)


def router(settings: ServerSettings) -> APIRouter:
    api = APIRouter()
    guarded = [Depends(require_key)] if settings.api_key is not None else []

    # HEAD too, as uptime monitors ask (FastAPI, unlike Starlette, does not add it to GET routes); left out
    # of the OpenAPI document, which lists each route's GET.
    @api.get("/healthz", summary="The process is alive")
    @api.head("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", summary="200 once the model is loaded", responses=error_responses("unhealthy"))
    @api.head("/readyz", include_in_schema=False)
    async def readyz(state: StateDep) -> dict[str, str]:
        if state.batcher is None or not state.batcher.running or state.tagger is None:
            raise ApiError("unhealthy", state.not_ready_reason())
        return {"status": "ready", "model": state.tagger.source}

    @api.get("/metrics", dependencies=guarded, summary="Prometheus metrics", response_class=Response)
    async def metrics(state: StateDep) -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return api
