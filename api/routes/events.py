"""A job's progress as Server-Sent Events: `progress` on every change, then `done`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import JobIdPath
from api.schemas import ErrorOut, JobProgress
from api.views import JobLinks, job_links, job_progress
from db.repository import get_job
from db.session import session_scope

router = APIRouter(tags=["imports"], responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})

POLL_INTERVAL_S = 0.25
HEARTBEAT_S = 15.0
# Fields that change with the clock alone; a change in them is no news.
CLOCK_FIELDS = frozenset({"elapsed_s", "rows_per_s", "eta_s"})


@router.get(
    "/excel/import/{job_id}/events",
    name="import_events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: progress` with the job as JSON on each change,"
            " `event: done` at the end; `: keep-alive` comments in between.",
        }
    },
)
async def import_events(job_id: JobIdPath, request: Request) -> StreamingResponse:
    """Follow a job until it completes, fails or is cancelled; the stream then closes."""
    links = job_links(request, job_id)
    first = await run_in_threadpool(_read_progress, job_id, links)
    if first is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no import job {job_id}")
    return StreamingResponse(
        _events(request, job_id, links, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, job_id: uuid.UUID, links: JobLinks, progress: JobProgress | None
) -> AsyncIterator[str]:
    last_news: dict[str, object] | None = None
    last_sent = time.monotonic()
    while progress is not None:
        news = progress.model_dump(mode="json", exclude=set(CLOCK_FIELDS))
        if news != last_news:
            yield _event("progress", progress)
            last_news, last_sent = news, time.monotonic()
        if progress.status.is_terminal:
            yield _event("done", progress)
            return
        if time.monotonic() - last_sent >= HEARTBEAT_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        if await request.is_disconnected():
            return
        await anyio.sleep(POLL_INTERVAL_S)
        progress = await run_in_threadpool(_read_progress, job_id, links)


def _read_progress(job_id: uuid.UUID, links: JobLinks) -> JobProgress | None:
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        return None if job is None else job_progress(job, links)


def _event(name: str, progress: JobProgress) -> str:
    return f"event: {name}\ndata: {progress.model_dump_json()}\n\n"
