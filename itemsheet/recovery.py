"""Crash recovery: heartbeats of running imports, and resuming or failing the ones that died.

A running attempt beats (`beat`) every few seconds. An attempt that dies (killed, its worker
stopped) leaves its job `processing`; the reconciler finds it by its silence and either
claims an automatic resume or, once the attempts are used up, fails it. Which import may
write items is decided here too: one job at a time holds the writer's turn, from its first
batch until it leaves `processing`, so concurrent imports end as if run one after the other.
Callers own every transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.item_store import lock_for_transaction
from db.models import ImportJob, JobStatus, utcnow
from db.repository import get_job
from itemsheet.importing import CancelRequested, StaleAttempt

WRITER_LOCK = "importer:item-writer"


class Claim(StrEnum):
    """What the reconciler did with a job that stopped beating or never began."""

    RESUME = "resume"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Stalled:
    """A `processing` job whose attempt stopped beating."""

    job_id: uuid.UUID
    attempt: int
    filename: str
    flow_run_id: uuid.UUID | None
    heartbeat_at: datetime | None


def beat(session: Session, job_id: uuid.UUID, *, attempt: int) -> bool:
    """Record that `attempt` is alive; False once it no longer owns the job."""
    result = session.execute(
        update(ImportJob)
        .where(
            ImportJob.id == job_id,
            ImportJob.attempt == attempt,
            ImportJob.status == JobStatus.PROCESSING,
        )
        # A beat is no progress: keep `updated_at`, which progress streams follow.
        .values(heartbeat_at=utcnow(), updated_at=ImportJob.updated_at)
    )
    return bool(getattr(result, "rowcount", 0))


def mark_interrupted(
    session: Session, job_id: uuid.UUID, *, reason: str, flow_run_id: uuid.UUID | None = None
) -> bool:
    """Leave a job whose run died to the reconciler at once (its beat is cleared).

    With `flow_run_id`, only while that run owns the job; False when nothing changed.
    """
    job = get_job(session, job_id, for_update=True)
    if job is None or job.status not in (JobStatus.PENDING, JobStatus.PROCESSING):
        return False
    if flow_run_id is not None and job.flow_run_id not in (None, flow_run_id):
        return False
    job.status = JobStatus.PROCESSING
    job.heartbeat_at = None
    job.error = reason
    return True


def mark_all_interrupted(session: Session, *, reason: str) -> int:
    """Every `processing` job is left to be resumed (a stack that stops on purpose)."""
    result = session.execute(
        update(ImportJob)
        .where(ImportJob.status == JobStatus.PROCESSING)
        .values(heartbeat_at=None, error=reason)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def find_stalled(session: Session, *, stale_before: datetime) -> list[Stalled]:
    """`processing` jobs that have not beaten since `stale_before` (or were interrupted)."""
    jobs = session.scalars(
        select(ImportJob)
        .where(
            ImportJob.status == JobStatus.PROCESSING,
            (ImportJob.heartbeat_at.is_(None)) | (ImportJob.heartbeat_at < stale_before),
        )
        .order_by(ImportJob.created_at)
    ).all()
    return [Stalled(j.id, j.attempt, j.filename, j.flow_run_id, j.heartbeat_at) for j in jobs]


@dataclass(frozen=True)
class Unstarted:
    """A `pending` job whose flow run was started a while ago and has not begun the import."""

    job_id: uuid.UUID
    flow_run_id: uuid.UUID
    filename: str


def find_unstarted(session: Session, *, quiet_since: datetime) -> list[Unstarted]:
    """`pending` jobs with a flow run that have not changed since `quiet_since`."""
    jobs = session.scalars(
        select(ImportJob)
        .where(
            ImportJob.status == JobStatus.PENDING,
            ImportJob.flow_run_id.is_not(None),
            ImportJob.updated_at < quiet_since,
        )
        .order_by(ImportJob.created_at)
    ).all()
    return [Unstarted(j.id, j.flow_run_id, j.filename) for j in jobs if j.flow_run_id is not None]


def end_unstarted(
    session: Session, job_id: uuid.UUID, *, flow_run_id: uuid.UUID, status: JobStatus, reason: str
) -> bool:
    """End a `pending` job whose run `flow_run_id` ended (or vanished) without beginning it.

    False when the job moved on meanwhile: it began, ended, or was given a newer run.
    """
    job = get_job(session, job_id, for_update=True)
    if job is None or job.status != JobStatus.PENDING or job.flow_run_id != flow_run_id:
        return False
    _end(job, status, reason)
    return True


def claim_restart(
    session: Session, job_id: uuid.UUID, *, flow_run_id: uuid.UUID, max_attempts: int
) -> Claim | None:
    """Claim a new run for a `pending` job whose run `flow_run_id` crashed before it began.

    Such a crash (its worker stopped while starting it, the process failed to start) costs
    an attempt like an interrupted import; out of attempts the job is failed. None when the
    job moved on meanwhile.
    """
    job = get_job(session, job_id, for_update=True)
    if job is None or job.status != JobStatus.PENDING or job.flow_run_id != flow_run_id:
        return None
    runs = 1 + job.resumes
    if runs >= max_attempts:
        _end(
            job,
            JobStatus.FAILED,
            f"its Prefect flow run crashed {runs} time(s) before the import began"
            " (worker stopped or process failed to start); retry the job",
        )
        return Claim.FAILED
    job.resumes += 1
    job.updated_at = utcnow()
    return Claim.RESUME


def record_restart_run(
    session: Session, job_id: uuid.UUID, *, crashed: uuid.UUID, flow_run_id: uuid.UUID | None
) -> None:
    """Give a restarted job its new run; with None (no run could be started) undo the claim."""
    job = get_job(session, job_id, for_update=True)
    if job is None or job.status != JobStatus.PENDING or job.flow_run_id != crashed:
        return
    if flow_run_id is None:
        job.resumes = max(0, job.resumes - 1)
    else:
        job.flow_run_id = flow_run_id


def claim_resume(
    session: Session,
    job_id: uuid.UUID,
    *,
    attempt: int,
    stale_before: datetime,
    max_attempts: int,
) -> Claim | None:
    """Claim an automatic resume of a stalled job, or fail it when its attempts are used up.

    None when somebody else got there first (a new attempt began, another reconciler
    claimed it, it ended). A claim renews the beat, so no other reconciler claims it
    again while the new run starts.
    """
    job = get_job(session, job_id, for_update=True)
    if job is None or job.status != JobStatus.PROCESSING or job.attempt != attempt:
        return None
    if job.heartbeat_at is not None and job.heartbeat_at >= stale_before:
        return None
    runs = 1 + job.resumes
    if runs >= max_attempts:
        _end(
            job,
            JobStatus.FAILED,
            f"the import was interrupted {runs} time(s) (worker stopped or killed) and gets"
            f" no more automatic attempts; retry the job to resume after row"
            f" {job.processed_rows:,}",
        )
        return Claim.FAILED
    job.resumes += 1
    job.heartbeat_at = utcnow()
    return Claim.RESUME


def release_claim(session: Session, job_id: uuid.UUID, *, attempt: int) -> None:
    """Undo a claim whose run could not be started; the next round tries again."""
    job = get_job(session, job_id, for_update=True)
    if job is not None and job.status == JobStatus.PROCESSING and job.attempt == attempt:
        job.resumes = max(0, job.resumes - 1)
        job.heartbeat_at = None


def record_resume_run(
    session: Session, job_id: uuid.UUID, *, attempt: int, flow_run_id: uuid.UUID
) -> None:
    """The run that resumes a job owns it from now on (late hooks of the dead run do not)."""
    session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.attempt == attempt)
        .values(flow_run_id=flow_run_id)
    )


def take_writer_turn(session: Session, job_id: uuid.UUID, *, attempt: int) -> bool:
    """True when `attempt` may write items: no other `processing` job holds the turn.

    The turn is kept until the job leaves `processing`, so an import that crashed keeps
    it until it is resumed or failed. Raises `StaleAttempt` / `CancelRequested` like a batch.
    """
    # One decision at a time (PostgreSQL advisory lock; SQLite: the IMMEDIATE write lock).
    lock_for_transaction(session, WRITER_LOCK)
    job = get_job(session, job_id, for_update=True)
    if job is None or job.attempt != attempt or job.status != JobStatus.PROCESSING:
        raise StaleAttempt(f"job {job_id} is no longer owned by attempt {attempt}")
    if job.cancel_requested:
        raise CancelRequested(f"job {job_id} was cancelled before it wrote")
    if job.writing_since is not None:
        return True
    holder = session.scalars(
        select(ImportJob.id)
        .where(
            ImportJob.id != job_id,
            ImportJob.status == JobStatus.PROCESSING,
            ImportJob.writing_since.is_not(None),
        )
        .limit(1)
    ).first()
    if holder is not None:
        return False
    job.writing_since = utcnow()
    return True


def _end(job: ImportJob, status: JobStatus, reason: str) -> None:
    job.status = status
    job.error = reason
    job.finished_at = utcnow()
