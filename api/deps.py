"""What routes are given: sessions (one unit of work per request), settings and the trigger."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Annotated, Any, Protocol

import anyio
from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from api.fanout import Hub
from db.session import get_sessionmaker
from orchestration.dispatch import Dispatcher, Starter
from orchestration.trigger import PrefectTrigger, Readiness
from settings import Settings, get_settings

# Every route that names a job takes its id from the path the same way.
JobIdPath = Annotated[uuid.UUID, Path(description="The import job's id.")]


class ImportTrigger(Starter, Protocol):
    """Starts and cancels import flow runs (`orchestration.trigger.PrefectTrigger` in service)."""

    async def cancel(self, flow_run_id: uuid.UUID) -> None:
        """Cancel a flow run that has not finished."""

    async def readiness(self) -> Readiness:
        """Whether Prefect answers, has the deployment and a worker polling."""

    async def resume_review(self, flow_run_id: uuid.UUID, answer: dict[str, Any]) -> str:
        """Resume a review's suspended run: "resumed", "busy" (on its way) or "ended"."""


# At most this many requests hold a database session at once: fewer than the engine's
# pool (db.session.POOL_SIZE + MAX_OVERFLOW), so a request that has a slot never waits for
# a connection. Without it, 200 concurrent polls deadlocked: worker threads waited for
# connections that only a session's exit, itself waiting for a worker thread, gave back.
SESSION_SLOTS = 50
_slots: dict[int, anyio.Semaphore] = {}


def _slot() -> anyio.Semaphore:
    # One semaphore per event loop (tests run several apps, each on its own loop).
    loop = id(asyncio.get_running_loop())
    if loop not in _slots:
        _slots.clear()
        _slots[loop] = anyio.Semaphore(SESSION_SLOTS)
    return _slots[loop]


async def get_session() -> AsyncIterator[Session]:
    """A write unit of work: committed when the route returns, rolled back if it raises."""
    async with _slot():
        session = get_sessionmaker(write=True)()
        try:
            yield session
            await run_in_threadpool(session.commit)
        except BaseException:
            await run_in_threadpool(session.rollback)
            raise
        finally:
            session.close()


async def get_read_session() -> AsyncIterator[Session]:
    """A read-only session that never takes SQLite's write lock."""
    async with _slot():
        session = get_sessionmaker(write=False)()
        try:
            yield session
        finally:
            # Returning a connection to the pool is quick; do it on the loop, so freeing a
            # connection never waits for a worker thread.
            session.close()


def get_dispatcher(request: Request) -> Dispatcher:
    """The app's dispatcher (started with the app; made here when a test runs no lifespan)."""
    app = request.app
    dispatcher: Dispatcher | None = getattr(app.state, "dispatcher", None)
    if dispatcher is None:
        dispatcher = Dispatcher(lambda: app.dependency_overrides.get(get_trigger, get_trigger)())
        app.state.dispatcher = dispatcher
    return dispatcher


async def get_hub(connection: HTTPConnection) -> Hub:
    """The app's pollers of followed jobs, made on first use for the running event loop."""
    app = connection.app
    hub: Hub | None = getattr(app.state, "hub", None)
    # A server runs one loop; a TestClient used without `with` runs each request on its own.
    if hub is None or hub.loop is not asyncio.get_running_loop():
        hub = Hub()
        app.state.hub = hub
    return hub


@lru_cache
def get_trigger() -> ImportTrigger:
    """The process's trigger; it caches the deployment id. Tests override this dependency."""
    return PrefectTrigger()


# scope="function": the unit of work ends before the response is sent, so a client never
# sees an answer whose commit then fails.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TriggerDep = Annotated[ImportTrigger, Depends(get_trigger)]
HubDep = Annotated[Hub, Depends(get_hub)]
