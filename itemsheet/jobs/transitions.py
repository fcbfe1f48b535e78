"""The one place a job changes status: `move`.

Every transition goes through `move`, which checks that the status may follow the one the
job has (`JobStatus.can_become`), stamps the times that go with it, and notes the job on
its session for the transition's event. Whoever tells of transitions (the Prefect events
of `orchestration.events`) reads the noted jobs at flush (`moved`) and tells them once the
transaction commits; a rollback forgets them. Nothing else assigns `job.status`
(`tests/itemsheet/test_transitions.py` reads the code for one). The job figures of
`/metrics` are read from the job table when asked, so a transition has no counter to bump.
Callers own every transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import event
from sqlalchemy.orm import Session

from db.models import ImportJob, JobStatus, utcnow
from itemsheet.sheet.messages import ERROR_CHARS, clip

# The session's note of the jobs `move` changed in its current transaction.
MOVED_KEY = "importer.moved_jobs"


class TransitionRefused(Exception):
    """A job was asked to move to a status that may not follow its own."""


def move(
    session: Session,
    job: ImportJob,
    to: JobStatus,
    *,
    reason: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Move `job` to `to`; False (and nothing changed) when it is already there.

    The times that go with the new status are stamped at `now`: a job ended gets its
    `finished_at` (an import marked `undone` keeps the one of its own end), one that begins
    running its `started_at` (once), and one that waits for its review its
    `review_ready_at` and `paused_since`, whose wait the run after the answer adds to
    `waited_s` (counting itself in `review_runs`). `reason` becomes the job's `error` on
    entering any status but `awaiting_review` and `undone` (which keep theirs); without one
    the error is cleared.
    `TransitionRefused` when `to` may not follow the job's status.
    """
    if job.status is to:
        return False
    if not job.status.can_become(to):
        raise TransitionRefused(f"job {job.id} cannot go from {job.status} to {to}")
    at = now or utcnow()
    job.status = to
    if to not in (JobStatus.AWAITING_REVIEW, JobStatus.UNDONE):
        job.error = clip(reason, ERROR_CHARS) if reason else None
    if to is JobStatus.AWAITING_REVIEW:
        job.review_ready_at = at
        job.heartbeat_at = None  # no process runs it while it waits
        job.paused_since = job.paused_since or at
    else:
        job.review_ready_at = None
    if to is JobStatus.PROCESSING:
        job.started_at = job.started_at or at
        if job.paused_since is not None:
            # The run an answer started: the wait since the preview ends, and the run is
            # the review's, not another attempt.
            job.waited_s = (job.waited_s or 0.0) + (at - job.paused_since).total_seconds()
            job.review_runs = (job.review_runs or 0) + 1
            job.paused_since = None
    if to in (JobStatus.PENDING, JobStatus.PROCESSING):
        job.finished_at = None
    elif to in JobStatus.terminal() - {JobStatus.UNDONE}:
        job.finished_at = at
    noted: dict[int, ImportJob] = session.info.setdefault(MOVED_KEY, {})
    noted[id(job)] = job
    return True


def moved(session: Session) -> list[ImportJob]:
    """The jobs `move` changed in the session's current transaction."""
    noted: dict[int, ImportJob] = session.info.get(MOVED_KEY, {})
    return list(noted.values())


def _forget(session: Session) -> None:
    session.info.pop(MOVED_KEY, None)


# Registered once, at this module's import, which every code that moves a job has loaded:
# a transaction's notes end with it, whoever reads them.
event.listen(Session, "after_commit", _forget)
event.listen(Session, "after_rollback", _forget)
