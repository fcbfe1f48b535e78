"""Create the flow runs that jobs wait for, off the request path, with backoff.

The API dispatches a job right after its upload is answered, and keeps a loop that tries
again (quickly at first, then every few seconds) while Prefect is starting or away; every
worker's reconciler does a round too. Runs are created under the job's `run_key`, so any
number of dispatchers may race for one job and it still gets exactly one run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Protocol

from prefect.logging import get_logger
from starlette.concurrency import run_in_threadpool

from db.models import utcnow
from db.session import session_scope
from itemsheet.jobs.dispatching import Waiting, find_waiting, note_waiting, record_run

# Imported for what importing it does: every process that runs a dispatcher (the API,
# each worker) tells Prefect of the job transitions it commits, the dispatcher's
# time-outs among them.
from orchestration import events  # noqa: F401
from orchestration.trigger import TriggerUnavailable
from settings import Settings, get_settings

# Pauses between rounds while some job still waits: quick at first (Prefect may be a
# second from ready), then steady.
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0)

logger = get_logger("importer.dispatch")


class Starter(Protocol):
    """What the dispatcher needs from Prefect (`PrefectTrigger` in production)."""

    async def start_import(
        self, job_id: uuid.UUID, *, filename: str, key: str | None = None, undo: bool = False
    ) -> uuid.UUID: ...


async def dispatch_once(
    trigger: Starter, settings: Settings, *, only: uuid.UUID | None = None
) -> int:
    """Create a run for each waiting job (or just `only`); returns how many still wait."""
    waiting = await run_in_threadpool(_find_waiting)
    if only is not None:
        waiting = [w for w in waiting if w.job_id == only]
    still = 0
    for job in waiting:
        if not await _dispatch(trigger, settings, job):
            still += 1
    return still


async def _dispatch(trigger: Starter, settings: Settings, job: Waiting) -> bool:
    try:
        run_id = await trigger.start_import(
            job.job_id, filename=job.filename, key=job.run_key, undo=job.undo
        )
    except TriggerUnavailable as exc:
        give_up = utcnow() - timedelta(seconds=settings.dispatch_timeout_s)
        failed = await run_in_threadpool(_note_waiting, job, str(exc), give_up)
        if failed:
            logger.warning(
                "import job %s failed: no flow run could be created: %s", job.job_id, exc
            )
            return True
        return False
    await run_in_threadpool(_record_run, job, run_id)
    return True


# The database work runs in worker threads: a SQLite write may wait for the write lock,
# and the API's event loop must never wait with it.
def _find_waiting() -> list[Waiting]:
    with session_scope(write=False) as session:
        return find_waiting(session)


def _note_waiting(job: Waiting, reason: str, give_up: datetime) -> bool:
    with session_scope() as session:
        return note_waiting(
            session, job.job_id, run_key=job.run_key, reason=reason, give_up_before=give_up
        )


def _record_run(job: Waiting, run_id: uuid.UUID) -> None:
    with session_scope() as session:
        record_run(session, job.job_id, run_key=job.run_key, flow_run_id=run_id)


class Dispatcher:
    """The API's dispatch loop: woken by each upload, and patient while Prefect is away."""

    def __init__(self, trigger: Callable[[], Starter]) -> None:
        # Looked up at each use, so tests may swap the trigger the app is given.
        self._trigger = trigger
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        """Look now (a job was just committed)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        """True while the loop runs (the app was started with its lifespan)."""
        return self._task is not None and not self._task.done()

    async def dispatch(self, job_id: uuid.UUID) -> None:
        """Try once for one job (right after its upload was answered); the loop does the rest."""
        try:
            if await dispatch_once(self._trigger(), get_settings(), only=job_id):
                self.kick()
        except Exception:  # the database is away for a moment; the loop tries again
            logger.exception("dispatching import job %s failed; trying again", job_id)
            self.kick()

    def start(self) -> None:
        """Run the loop in the current event loop until `stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dispatcher")

    async def stop(self) -> None:
        """Stop the loop (application shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            pause = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)] if failures else None
            timeout = pause if pause is not None else get_settings().dispatch_interval_s
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                still = await dispatch_once(self._trigger(), get_settings())
            except Exception:
                logger.exception("dispatching waiting imports failed; trying again")
                still = 1
            failures = failures + 1 if still else 0
