"""A follower's way to its client: Server-Sent Events or a WebSocket, with the same events.

Both join the job's poller (`api.fanout`) only once the client is connected and leave it
as soon as the client goes, so a stream that never starts, or ends in any way, holds no
place under the cap and keeps no poller running. Both end after the stream's longest life
(`IMPORTER_EVENT_STREAM_MAX_S`) with a hint to reconnect, so no connection lasts forever.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, aclosing
from typing import Literal

import anyio
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.fanout import RETRY_AFTER_S, Follower, FollowingFailed, StreamsFull
from api.schemas import JobProgress

HEARTBEAT_S = 15.0
# How long an EventSource waits before it reconnects once a stream reached its longest life.
RECONNECT_MS = 2000
# The subprotocol a WebSocket is accepted with when the client offers it; a browser that
# offers its key as a subprotocol must offer this one too (see README, "API keys").
SUBPROTOCOL = "importer.events"

# WebSocket close codes besides 1000 (normal, after `done`).
GOING_AWAY = 1001  # the stream reached its longest life: reconnect
SERVER_ERROR = 1011  # the job could not be read
TRY_AGAIN_LATER = 1013  # the cap on open streams
NO_SUCH_JOB = 4404
CANNOT_READ = "the job could not be read; reconnect in a moment"

Kind = Literal["progress", "done", "idle", "expired", "gone"]


async def job_events(
    follower: Follower, first: JobProgress, *, lifetime_s: float, idle_s: float = math.inf
) -> AsyncGenerator[tuple[Kind, JobProgress | None], None]:
    """`progress` with the first state and each change, then `done` with the final one.

    `idle` after `idle_s` without news, `expired` once `lifetime_s` is over, `gone` when the
    job is deleted; the last two end it. Raises `FollowingFailed`.
    """
    deadline = anyio.current_time() + lifetime_s
    progress: JobProgress | None = first
    while progress is not None:
        yield "progress", progress
        if progress.status.is_terminal:
            yield "done", progress
            return
        while True:
            left = deadline - anyio.current_time()
            if left <= 0:
                yield "expired", None
                return
            arrived, progress = await _next_within(follower, min(left, idle_s))
            if arrived:
                break
            if left > idle_s:
                yield "idle", None
    yield "gone", None


async def _next_within(follower: Follower, seconds: float) -> tuple[bool, JobProgress | None]:
    with anyio.move_on_after(seconds):
        return True, await follower.next()
    return False, None


class EventStream(Response):
    """`text/event-stream` of one job; 404 for an unknown job, 429 over the cap.

    The client's disconnect is watched the whole time (not only when the next event is
    written, as Starlette does for ASGI 2.4 servers), so a client that leaves frees its place
    at once.
    """

    media_type = "text/event-stream"

    def __init__(
        self, following: AbstractAsyncContextManager[Follower], *, lifetime_s: float, missing: str
    ) -> None:
        self.following = following
        self.lifetime_s = lifetime_s
        self.missing = missing
        self.status_code = 200
        self.background = None
        # No body, so no Content-Length (as StreamingResponse does).
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Join the job's poller, stream its events until done or the client leaves."""
        try:
            async with self.following as follower:
                first = await follower.next()
                if first is None:
                    raise HTTPException(404, self.missing)
                async with anyio.create_task_group() as group:

                    async def stream() -> None:
                        await self._stream(send, follower, first)
                        group.cancel_scope.cancel()

                    group.start_soon(stream)
                    await _client_left(receive)
                    group.cancel_scope.cancel()
        except StreamsFull as full:
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            raise HTTPException(429, str(full), headers=headers) from None

    async def _stream(self, send: Send, follower: Follower, first: JobProgress) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        events = job_events(follower, first, lifetime_s=self.lifetime_s, idle_s=HEARTBEAT_S)
        try:
            async with aclosing(events):
                async for kind, progress in events:
                    if text := _sse(kind, progress):
                        body = text.encode()
                        await send({"type": "http.response.body", "body": body, "more_body": True})
        except FollowingFailed:
            pass  # the stream ends without `done`: the client knows it was cut
        except OSError:
            return  # the client is gone (an ASGI 2.4 server says so only here)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _sse(kind: Kind, progress: JobProgress | None) -> str:
    if progress is not None:
        return f"event: {kind}\ndata: {progress.model_dump_json()}\n\n"
    if kind == "idle":
        return ": keep-alive\n\n"
    if kind == "expired":
        # No event: an EventSource reconnects after `retry` ms.
        return f": this stream reached its longest life; reconnect\nretry: {RECONNECT_MS}\n\n"
    return ""


async def _client_left(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def follow_on_websocket(
    websocket: WebSocket,
    following: AbstractAsyncContextManager[Follower],
    *,
    lifetime_s: float,
    missing: str,
) -> None:
    """Send each event as `{"event": ..., "data": job}`; close 1000 after `done`.

    Otherwise closes 4404 for an unknown job, 1013 over the cap, 1001 at the stream's longest
    life and 1011 when the job cannot be read, each with a one-sentence reason.
    """
    offered = websocket.scope.get("subprotocols", [])
    subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
    try:
        async with following as follower:
            await websocket.accept(subprotocol)
            try:
                first = await follower.next()
            except FollowingFailed:
                await websocket.close(SERVER_ERROR, CANNOT_READ)
                return
            if first is None:
                await websocket.close(NO_SUCH_JOB, missing)
                return
            left = False
            ending: tuple[int, str] | None = None
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    nonlocal left
                    while (await websocket.receive())["type"] != "websocket.disconnect":
                        pass
                    left = True
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                ending = await _send_events(websocket, follower, first, lifetime_s)
                group.cancel_scope.cancel()
            if ending is not None and not left:
                await websocket.close(*ending)
    except StreamsFull as full:
        await websocket.accept(subprotocol)
        await websocket.close(TRY_AGAIN_LATER, str(full))
    except WebSocketDisconnect:
        pass  # the client left before its first event


async def _send_events(
    websocket: WebSocket, follower: Follower, first: JobProgress, lifetime_s: float
) -> tuple[int, str] | None:
    """The events until the end; then the close code and reason, or None if the client left."""
    events = job_events(follower, first, lifetime_s=lifetime_s)
    try:
        async with aclosing(events):
            async for kind, progress in events:
                if kind == "expired":
                    return GOING_AWAY, "this stream reached its longest life; reconnect"
                if kind == "gone":
                    return NO_SUCH_JOB, "the import job was deleted"
                data = None if progress is None else progress.model_dump(mode="json")
                await websocket.send_text(json.dumps({"event": kind, "data": data}))
    except FollowingFailed:
        return SERVER_ERROR, CANNOT_READ
    except WebSocketDisconnect:
        return None
    return 1000, ""
