"""A job's progress as it changes: Server-Sent Events, or the same events on a WebSocket."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import StreamingResponse
from starlette.requests import HTTPConnection

from api.auth import key_label
from api.deps import HubDep, JobIdPath, SettingsDep
from api.fanout import Follower, Hub
from api.schemas import ErrorOut
from api.streams import EventStream, follow_on_websocket
from api.views import job_links
from settings import Settings

router = APIRouter(tags=["imports"], responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})
# WebSockets are not in the OpenAPI document, and the key check for them is the middleware's
# alone (a route dependency reading `Authorization` cannot see a key sent as a subprotocol).
websocket_router = APIRouter()


@router.get(
    "/excel/import/{job_id}/events",
    name="import_events",
    # For the schema only: the route answers with an `EventStream`, streamed the same way.
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: progress` with the job as JSON on each change,"
            " `event: done` at the end; `: keep-alive` comments in between. After"
            " IMPORTER_EVENT_STREAM_MAX_S a last comment and `retry:` line, then the stream"
            " closes and the client reconnects.",
        },
        429: {
            "model": ErrorOut,
            "description": "IMPORTER_MAX_EVENT_STREAMS streams are open, or"
            " IMPORTER_MAX_STREAMS_PER_CLIENT of this client's; `Retry-After` says when to try"
            " again.",
            "headers": {"Retry-After": {"description": "Seconds.", "schema": {"type": "integer"}}},
        },
    },
)
async def import_events(
    job_id: JobIdPath, request: Request, hub: HubDep, settings: SettingsDep
) -> EventStream:
    """Follow a job until it completes, fails or is cancelled; the stream then closes."""
    return EventStream(
        _following(request, hub, settings, job_id),
        lifetime_s=settings.event_stream_max_s,
        missing=_missing(job_id),
    )


@websocket_router.websocket("/excel/import/{job_id}/ws", name="import_socket")
async def import_socket(
    websocket: WebSocket, job_id: JobIdPath, hub: HubDep, settings: SettingsDep
) -> None:
    """The events of `import_events` as JSON messages; closes 1000 after `done`."""
    await follow_on_websocket(
        websocket,
        _following(websocket, hub, settings, job_id),
        lifetime_s=settings.event_stream_max_s,
        missing=_missing(job_id),
    )


def _following(
    connection: HTTPConnection, hub: Hub, settings: Settings, job_id: uuid.UUID
) -> AbstractAsyncContextManager[Follower]:
    """A place among the job's followers, under the caps in all and of this client."""
    return hub.follow(
        job_id,
        job_links(connection, job_id),
        limit=settings.max_event_streams,
        client=stream_client(connection),
        per_client=settings.max_streams_per_client,
    )


def stream_client(connection: HTTPConnection) -> str:
    """Whose streams these are: the label of the API key when keys are set (however many
    addresses use it), else the client's address (behind a proxy, as the proxy tells it)."""
    label = key_label(connection.scope)
    if label is not None:
        return f"key {label}"
    return f"address {connection.client.host if connection.client else ''}"


def _missing(job_id: uuid.UUID) -> str:
    return f"there is no import job {job_id}"
