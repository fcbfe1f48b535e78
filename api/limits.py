"""Refuse oversize request bodies early: by Content-Length up front, else while they stream in.

Without this, a chunked upload of any size would be spooled to disk in full before the route
could look at it. The limit is the upload limit plus room for the multipart framing and the
form fields; the file itself is held to the exact limit when it is stored.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itemsheet.files.storage import too_large_reason
from settings import get_settings

MULTIPART_OVERHEAD_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body passes the limit.

    An `HTTPException`, because FastAPI turns any other error raised while it reads a form
    into a 400 "There was an error parsing the body"; this one reaches the client as a 413.
    `Connection: close` makes the server drop the connection instead of reading (and
    discarding) the rest of the body to keep the connection alive.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(status_code=413, detail=reason, headers={"Connection": "close"})


def body_limit() -> int:
    """The most bytes a request body may have."""
    return get_settings().max_upload_bytes + MULTIPART_OVERHEAD_BYTES


class BodySizeLimit:
    """ASGI middleware that answers 413 instead of reading past `body_limit()`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count what actually arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit()
        reason = too_large_reason(get_settings().max_upload_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, reason)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(reason)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Only reached when the body was read outside FastAPI's request handling.
            if started:
                raise
            await _refuse(send, reason)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, reason: str) -> None:
    body = json.dumps({"detail": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
