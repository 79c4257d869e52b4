"""ASGI middleware: the request body limit, applied before anything parses a body."""

from __future__ import annotations

import logging

from fastapi.responses import Response
from fintag.serve.errors import error_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


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
