"""ASGI middleware: the request body limits, applied before anything parses a body."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi.responses import Response
from fintag.serve.errors import error_response
from fintag.serve.settings import ENV_PREFIX
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BodyLimit:
    """The largest body a route takes, the setting that raises it, and what a client can do instead."""

    max_bytes: int
    setting: str  # a field of `ServerSettings` (its flag is --<setting>)
    advice: str  # what the client can do, e.g. "send fewer or shorter texts per request"
    what: str = "the request body"

    def message(self, size: str) -> str:
        return (
            f"{self.what} is {size} bytes; the limit is {self.max_bytes} bytes (the server's "
            f"--{self.setting} / {ENV_PREFIX}{self.setting.upper()}): {self.advice}, or restart the server "
            f"with a larger --{self.setting}"
        )


class BodyLimitMiddleware:
    """Refuse bodies over the route's limit (413) before anything parses them: by Content-Length, then by the
    bytes actually received (a missing or understated Content-Length does not get past). `limits` maps a
    path to its own limit (the file upload's); every other path has `default`."""

    def __init__(
        self, app: ASGIApp, default: BodyLimit, limits: Mapping[str, BodyLimit] | None = None
    ) -> None:
        self.app = app
        self.default = default
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit.max_bytes:
            await self._too_large(limit, declared.decode())(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body
            body += message.get("body", b"")
            if len(body) > limit.max_bytes:
                await self._too_large(limit, f"more than {limit.max_bytes}")(scope, receive, send)
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

    @staticmethod
    def _too_large(limit: BodyLimit, size: str) -> Response:
        return error_response("validation_too_large", limit.message(size))
