"""The transactions of crash recovery: heartbeats, and carrying out `recovery.decide`.

A running attempt beats (`beat`) every few seconds. An attempt that dies leaves its job
`processing` and silent; a run that ends before it began leaves its job `pending`. The
reconciler lists such quiet jobs (`find_quiet`), asks `recovery.decide`, and `claim`s the
answer in one transaction that decides again on the locked row, so any number of
reconcilers can run and exactly one acts on a job. Callers own every transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from db.models import ImportJob, JobStatus, utcnow
from db.repository import get_job
from itemsheet.jobs.importing import finish_job
from itemsheet.jobs.recovery import Act, Action, JobFacts, Policy, RunState, decide
from itemsheet.jobs.transitions import move


def facts(job: ImportJob) -> JobFacts:
    """What the recovery rules read of a job row."""
    return JobFacts(
        job_id=job.id,
        status=job.status,
        attempt=job.attempt,
        flow_run_id=job.flow_run_id,
        heartbeat_at=job.heartbeat_at,
        updated_at=job.updated_at,
        resumes=job.resumes,
        processed_rows=job.processed_rows,
        filename=job.filename,
        review_ready_at=job.review_ready_at,
        undo=job.undo_of is not None,
    )


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
    if job is None or job.status not in JobStatus.under_way():
        return False
    if flow_run_id is not None and job.flow_run_id not in (None, flow_run_id):
        return False
    move(session, job, JobStatus.PROCESSING)
    job.heartbeat_at = None
    job.error = reason
    return True


def mark_runs_interrupted(session: Session, flow_run_ids: set[uuid.UUID], *, reason: str) -> int:
    """The `processing` jobs of these runs (a worker that stops on purpose) are left to be
    resumed at once; other jobs, of other workers, are not touched."""
    if not flow_run_ids:
        return 0
    result = session.execute(
        update(ImportJob)
        .where(
            ImportJob.status == JobStatus.PROCESSING,
            ImportJob.flow_run_id.in_(flow_run_ids),
        )
        .values(heartbeat_at=None, error=reason)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def find_quiet(session: Session, *, now: datetime, policy: Policy) -> list[JobFacts]:
    """Jobs the rules may act on: `processing` ones that stopped beating (or were
    interrupted), `pending` ones with a run and reviews that have not changed for a while."""
    quiet_since = now - policy.stale
    jobs = session.scalars(
        select(ImportJob)
        .where(
            or_(
                and_(
                    ImportJob.status == JobStatus.PROCESSING,
                    ImportJob.heartbeat_at.is_(None) | (ImportJob.heartbeat_at < quiet_since),
                ),
                and_(
                    ImportJob.status == JobStatus.PENDING,
                    ImportJob.flow_run_id.is_not(None),
                    ImportJob.updated_at < quiet_since,
                ),
                # Reviews: expired, or their suspended run ended in Prefect.
                and_(
                    ImportJob.status == JobStatus.AWAITING_REVIEW,
                    ImportJob.updated_at < quiet_since,
                ),
            )
        )
        .order_by(ImportJob.created_at)
    ).all()
    return [facts(job) for job in jobs]


def _same(job: ImportJob | None, seen: JobFacts) -> bool:
    """The job is still as the reconciler saw it: no new attempt, run or end meanwhile."""
    return (
        job is not None
        and job.status == seen.status
        and job.attempt == seen.attempt
        and job.flow_run_id == seen.flow_run_id
    )


def claim(
    session: Session, seen: JobFacts, *, run: RunState | None, now: datetime, policy: Policy
) -> Action | None:
    """Carry out what the rules decide for the job as it is now, under its row lock.

    None when there is nothing to do: the job moved on since `seen`, or the rules now say
    wait. A resume or restart counts an attempt; a resume renews the beat, so no other
    reconciler claims it again while its new run starts.
    """
    job = get_job(session, seen.job_id, for_update=True)
    if job is None or not _same(job, seen):
        return None
    action = decide(facts(job), run, now, policy)
    if action.act is Act.WAIT:
        return None
    if action.act is Act.RESUME:
        job.resumes += 1
        job.heartbeat_at = now
    elif action.act is Act.RESTART:
        job.resumes += 1
        job.updated_at = now
    else:
        status = JobStatus.FAILED if action.act is Act.FAIL else JobStatus.CANCELLED
        finish_job(session, job.id, status, reason=action.reason)
    return action


def record_new_run(session: Session, seen: JobFacts, flow_run_id: uuid.UUID | None) -> None:
    """Give a resumed or restarted job its new run, which owns it from now on (late hooks
    of the dead run do not). None: no run could be started; the claim is undone and the
    next round tries again."""
    job = get_job(session, seen.job_id, for_update=True)
    if job is None or not _same(job, seen):
        return  # the new run already began, or the job ended
    if flow_run_id is not None:
        job.flow_run_id = flow_run_id
        return
    job.resumes = max(0, job.resumes - 1)
    if job.status is JobStatus.PROCESSING:
        job.heartbeat_at = None
