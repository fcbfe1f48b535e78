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
from typing import Protocol

from prefect.logging import get_logger

from db.models import utcnow
from db.session import session_scope
from itemsheet.jobs.claims import claim, find_quiet, record_new_run
from itemsheet.jobs.recovery import Act, JobFacts, Policy, RunState, decide
from orchestration.dispatch import dispatch_once
from orchestration.trigger import PrefectTrigger, TriggerUnavailable
from settings import Settings, get_settings

logger = get_logger("importer.reconcile")


class Resumer(Protocol):
    """What the reconciler needs from Prefect (`PrefectTrigger` in production)."""

    async def run_state(self, flow_run_id: uuid.UUID) -> RunState | None: ...

    async def mark_crashed(self, flow_run_id: uuid.UUID, message: str) -> None: ...

    async def cancel(self, flow_run_id: uuid.UUID) -> None: ...

    async def retry_import(
        self, job_id: uuid.UUID, *, filename: str, attempt: int, undo: bool = False
    ) -> uuid.UUID: ...


def policy_of(settings: Settings) -> Policy:
    """The recovery rules' settings."""
    return Policy(
        stale_after_s=settings.stale_after_s,
        max_attempts=settings.max_attempts,
        review_ttl_s=settings.review_ttl_h * 3600,
    )


async def reconcile_once(resumer: Resumer, settings: Settings) -> dict[uuid.UUID, Act]:
    """One round: carry out `recovery.decide` for each quiet job; returns what was done.

    This only gathers facts (the job rows, their runs' states) and carries out the answer;
    the rules are all in `itemsheet.jobs.recovery`.
    """
    now, policy = utcnow(), policy_of(settings)
    with session_scope(write=False) as session:
        quiet = find_quiet(session, now=now, policy=policy)
    done: dict[uuid.UUID, Act] = {}
    for job in quiet:
        run = await resumer.run_state(job.flow_run_id) if job.flow_run_id else None
        if decide(job, run, now, policy).act is Act.WAIT:
            continue
        with session_scope() as session:
            action = claim(session, job, run=run, now=now, policy=policy)
        if action is None:
            continue  # another reconciler got there first, or the job moved on
        if action.crash_run and job.flow_run_id is not None:
            silence = f"no heartbeat for {settings.stale_after_s:.0f} s; its process is gone"
            await resumer.mark_crashed(job.flow_run_id, silence)
        if action.cancel_run and job.flow_run_id is not None:
            try:
                await resumer.cancel(job.flow_run_id)
            except TriggerUnavailable as exc:  # the job has ended; the run is Prefect's
                logger.warning("could not cancel flow run %s: %s", job.flow_run_id, exc)
        if action.act in (Act.RESUME, Act.RESTART):
            if await _start_run(resumer, job, action.act):
                done[job.job_id] = action.act
        else:
            done[job.job_id] = action.act
            logger.warning("import job %s ended %s: %s", job.job_id, action.act, action.reason)
    return done


async def _start_run(resumer: Resumer, job: JobFacts, act: Act) -> bool:
    """Create the run a claim asked for; without Prefect, undo the claim for the next round."""
    # A restart begins the import again (its run never began); a resume continues it.
    attempt = job.attempt if act is Act.RESUME else 0
    run_id: uuid.UUID | None = None
    try:
        run_id = await resumer.retry_import(
            job.job_id, filename=job.filename, attempt=attempt, undo=job.undo
        )
    except TriggerUnavailable as exc:
        logger.warning("cannot %s import job %s yet: %s", act, job.job_id, exc)
    with session_scope() as session:
        record_new_run(session, job, run_id)
    if run_id is not None:
        logger.info("import job %s: %s in flow run %s", job.job_id, act, run_id)
    return run_id is not None


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
