"""The reconciler: every worker resumes imports whose run died, or fails them when out of attempts.

Why a reconciler of our own next to Prefect's crash handling: Prefect's runner reports a run
whose process exits non-zero as Crashed and runs its `on_crashed` hooks, but only while the
runner itself lives; a worker that is killed, or a machine that goes away, leaves its runs
`Running` for ever. Our job heartbeat covers both, and the reconciler's claim is one
database transaction, so any number of workers can run it and exactly one resumes a job.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import datetime, timedelta
from typing import Protocol

from prefect.client.schemas.objects import StateType
from prefect.logging import get_logger

from db.models import utcnow
from db.session import session_scope
from deployments.trigger import PrefectTrigger, TriggerUnavailable
from itemsheet.recovery import (
    Claim,
    Stalled,
    claim_resume,
    find_stalled,
    record_resume_run,
    release_claim,
)
from settings import Settings, get_settings

# A resume run waiting in the queue for a free worker is not dead; give it this many
# stale periods to start before it is taken as lost (a worker killed while starting it).
QUEUED_GRACE = 5
WAITING = (StateType.SCHEDULED, StateType.PENDING)

logger = get_logger("importer.reconcile")


class Resumer(Protocol):
    """What the reconciler needs from Prefect (`PrefectTrigger` in production)."""

    async def run_state(self, flow_run_id: uuid.UUID) -> StateType | None: ...

    async def mark_crashed(self, flow_run_id: uuid.UUID, message: str) -> None: ...

    async def retry_import(
        self, job_id: uuid.UUID, *, filename: str, attempt: int
    ) -> uuid.UUID: ...


async def reconcile_once(resumer: Resumer, settings: Settings) -> dict[uuid.UUID, Claim]:
    """One round: resume (or fail) each stalled job; returns what was done to which job."""
    now = utcnow()
    stale_before = now - timedelta(seconds=settings.stale_after_s)
    with session_scope(write=False) as session:
        stalled = find_stalled(session, stale_before=stale_before)
    done: dict[uuid.UUID, Claim] = {}
    for job in stalled:
        state = await resumer.run_state(job.flow_run_id) if job.flow_run_id else None
        if state in WAITING and _recently_claimed(job, now, settings):
            continue
        with session_scope() as session:
            claim = claim_resume(
                session,
                job.job_id,
                attempt=job.attempt,
                stale_before=stale_before,
                max_attempts=settings.max_attempts,
            )
        if claim is None:
            continue
        done[job.job_id] = claim
        if job.flow_run_id and state in (StateType.RUNNING, StateType.CANCELLING):
            silence = f"no heartbeat for {settings.stale_after_s:.0f} s; its process is gone"
            await resumer.mark_crashed(job.flow_run_id, silence)
        if claim is Claim.FAILED:
            logger.warning("import job %s is out of attempts; marked failed", job.job_id)
            continue
        await _resume(resumer, job)
    return done


def _recently_claimed(job: Stalled, now: datetime, settings: Settings) -> bool:
    grace = timedelta(seconds=QUEUED_GRACE * settings.stale_after_s)
    return job.heartbeat_at is not None and job.heartbeat_at > now - grace


async def _resume(resumer: Resumer, job: Stalled) -> None:
    try:
        run_id = await resumer.retry_import(job.job_id, filename=job.filename, attempt=job.attempt)
    except TriggerUnavailable as exc:
        logger.warning("cannot resume import job %s yet: %s", job.job_id, exc)
        with session_scope() as session:
            release_claim(session, job.job_id, attempt=job.attempt)
        return
    with session_scope() as session:
        record_resume_run(session, job.job_id, attempt=job.attempt, flow_run_id=run_id)
    logger.info("resuming import job %s in flow run %s", job.job_id, run_id)


async def reconcile_forever(settings: Settings) -> None:
    """Reconcile every `reconcile_interval_s` until the process ends."""
    resumer = PrefectTrigger()
    try:
        while True:
            try:
                await reconcile_once(resumer, settings)
            except Exception:  # the database or Prefect is away; try again next round
                logger.exception("reconciling imports failed; trying again")
            await asyncio.sleep(settings.reconcile_interval_s)
    finally:
        await resumer.aclose()


def start_reconciler(settings: Settings | None = None) -> threading.Thread:
    """Run the reconciler in a daemon thread of this (worker) process."""
    chosen = settings or get_settings()
    thread = threading.Thread(
        target=lambda: asyncio.run(reconcile_forever(chosen)), name="reconciler", daemon=True
    )
    thread.start()
    return thread
