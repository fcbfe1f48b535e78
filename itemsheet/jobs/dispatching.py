"""Jobs that wait for a flow run: asked for at commit, created by whichever process looks next.

An upload (or a retry) only records that its job needs a run (`request_run`) and answers.
A dispatcher, in the API and in every worker, creates the run with the job's `run_key` as
Prefect's idempotency key, so two dispatchers racing for one job get the same run. Until it
exists the job stays `pending` and `waiting_for` says why; after the configured wait it
fails with that reason. Callers own every transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ImportJob, JobStatus, utcnow
from db.repository import get_job
from itemsheet.jobs.transitions import move


@dataclass(frozen=True)
class Waiting:
    """A job that needs a flow run, with the key its run is created under."""

    job_id: uuid.UUID
    filename: str
    run_key: str
    requested_at: datetime
    # An undo job: its run is of the `undo-import` deployment.
    undo: bool = False


def request_run(job: ImportJob, *, retry: bool = False) -> None:
    """Mark `job` as needing a new flow run (a first run keys on the job id itself)."""
    job.flow_run_id = None
    job.run_requested_at = utcnow()
    job.run_key = f"{job.id}-retry-{uuid.uuid4().hex[:8]}" if retry else str(job.id)
    job.waiting_for = None


def runs_waiting(
    session: Session, *, for_longer_than_s: float = 0.0, besides: uuid.UUID | None = None
) -> bool:
    """True when a job's run exists but the job has not begun (it waits for a worker), and
    has not changed for more than `for_longer_than_s` (its run was recorded, or a review's
    answer given, that long ago); `besides` is not counted."""
    query = select(ImportJob.id).where(
        ImportJob.status == JobStatus.PENDING, ImportJob.flow_run_id.is_not(None)
    )
    if for_longer_than_s:
        since = utcnow() - timedelta(seconds=for_longer_than_s)
        query = query.where(ImportJob.updated_at < since)
    if besides is not None:
        query = query.where(ImportJob.id != besides)
    return session.scalars(query.limit(1)).first() is not None


def find_waiting(session: Session, *, limit: int = 50) -> list[Waiting]:
    """Pending jobs that asked for a run and have none yet, oldest first."""
    jobs = session.scalars(
        select(ImportJob)
        .where(
            ImportJob.run_requested_at.is_not(None),
            ImportJob.status == JobStatus.PENDING,
            ImportJob.flow_run_id.is_(None),
        )
        .order_by(ImportJob.run_requested_at)
        .limit(limit)
    ).all()
    return [
        Waiting(j.id, j.filename, j.run_key or str(j.id), j.run_requested_at, j.undo_of is not None)
        for j in jobs
        if j.run_requested_at is not None
    ]


def record_run(
    session: Session, job_id: uuid.UUID, *, run_key: str, flow_run_id: uuid.UUID
) -> bool:
    """Give the job its new run, unless it moved on (cancelled, asked again); True if given."""
    job = get_job(session, job_id, for_update=True)
    if job is None or job.run_key != run_key or job.run_requested_at is None:
        return False
    job.run_requested_at = None
    job.waiting_for = None
    if job.status != JobStatus.PENDING:
        return False
    # The run may already have begun and stored itself; either way it is this run.
    job.flow_run_id = flow_run_id
    return True


def note_waiting(
    session: Session, job_id: uuid.UUID, *, run_key: str, reason: str, give_up_before: datetime
) -> bool:
    """Say why the job still has no run; fail it once it asked before `give_up_before`.

    True when the job was failed.
    """
    job = get_job(session, job_id, for_update=True)
    if job is None or job.run_key != run_key or job.status != JobStatus.PENDING:
        return False
    if job.run_requested_at is not None and job.run_requested_at < give_up_before:
        waited = (utcnow() - job.run_requested_at).total_seconds()
        move(
            session,
            job,
            JobStatus.FAILED,
            reason=f"the import could not be started within {waited:,.0f} s: {reason}",
        )
        job.run_requested_at = None
        job.waiting_for = None
        return True
    if job.waiting_for != reason:
        job.waiting_for = reason
    return False
