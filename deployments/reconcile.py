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

from db.models import JobStatus, utcnow
from db.session import session_scope
from deployments.dispatch import dispatch_once
from deployments.trigger import PrefectTrigger, TriggerUnavailable
from itemsheet.recovery import (
    Claim,
    Stalled,
    Unstarted,
    claim_restart,
    claim_resume,
    end_unstarted,
    find_stalled,
    find_unstarted,
    record_restart_run,
    record_resume_run,
    release_claim,
)
from settings import Settings, get_settings

# A resume run waiting in the queue for a free worker is not dead; give it this many
# stale periods to start before it is taken as lost (a worker killed while starting it).
QUEUED_GRACE = 5
WAITING = (StateType.SCHEDULED, StateType.PENDING)
# A run in one of these has begun (or is about to begin) its import; anything else that
# leaves a job `pending` is a run that ended, or vanished, before it began.
UNDER_WAY = (*WAITING, StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED)

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
    await _end_unstarted(resumer, settings, stale_before, done)
    return done


async def _end_unstarted(
    resumer: Resumer, settings: Settings, quiet_since: datetime, done: dict[uuid.UUID, Claim]
) -> None:
    """Restart or end `pending` jobs whose run ended or vanished before it began the import.

    A run that crashed before our flow code ran (its worker stopped while starting it) gets
    a new run, within the attempts; one cancelled in Prefect's UI while it waited, deleted
    there, or failed, ends its job with the reason. Either would otherwise leave the job
    `pending` for ever. A run still waiting for a worker is left alone.
    """
    with session_scope(write=False) as session:
        unstarted = find_unstarted(session, quiet_since=quiet_since)
    for job in unstarted:
        state = await resumer.run_state(job.flow_run_id)
        if state in UNDER_WAY:
            continue
        if state is StateType.CRASHED:
            await _restart(resumer, settings, job, done)
            continue
        if state is StateType.CANCELLED:
            status, claim = JobStatus.CANCELLED, Claim.CANCELLED
            reason = "its Prefect flow run was cancelled before the import began; retry the job"
        else:
            status, claim = JobStatus.FAILED, Claim.FAILED
            ended = f"ended as {state.value.title()}" if state else "is gone from Prefect"
            reason = f"its Prefect flow run {ended} before the import began; retry the job"
        with session_scope() as session:
            if end_unstarted(
                session, job.job_id, flow_run_id=job.flow_run_id, status=status, reason=reason
            ):
                done[job.job_id] = claim
                logger.warning("import job %s: %s", job.job_id, reason)


async def _restart(
    resumer: Resumer, settings: Settings, job: Unstarted, done: dict[uuid.UUID, Claim]
) -> None:
    with session_scope() as session:
        claim = claim_restart(
            session, job.job_id, flow_run_id=job.flow_run_id, max_attempts=settings.max_attempts
        )
    if claim is None:
        return
    if claim is Claim.FAILED:
        done[job.job_id] = claim
        logger.warning(
            "import job %s: its run crashed before it began, out of attempts", job.job_id
        )
        return
    run_id: uuid.UUID | None = None
    try:
        run_id = await resumer.retry_import(job.job_id, filename=job.filename, attempt=0)
    except TriggerUnavailable as exc:
        logger.warning("cannot restart import job %s yet: %s", job.job_id, exc)
    with session_scope() as session:
        record_restart_run(session, job.job_id, crashed=job.flow_run_id, flow_run_id=run_id)
    if run_id is not None:
        done[job.job_id] = claim
        logger.info(
            "import job %s: its run crashed before it began; new run %s", job.job_id, run_id
        )


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
                # Jobs whose run was never created (the API stopped, Prefect was away).
                await dispatch_once(resumer, settings)
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
