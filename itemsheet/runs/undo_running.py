"""One attempt at an undo, step by step: what the `undo-import` flow's tasks carry out.

Like an import's attempt (`itemsheet.runs.running`): `running.begin` takes the job, its
heartbeat beats, then `plan` counts the batches, `write` waits for the writer's turn and
commits each remaining batch, and `finish` ends the undo and marks its import `undone`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

from db.models import JobStatus
from db.repository import get_job
from db.session import session_scope
from itemsheet.jobs.undoing import apply_undo_batch, finish_undo, plan_undo
from itemsheet.jobs.views import JobView, job_view
from itemsheet.runs.running import commit_batches, finish


def plan(job_id: uuid.UUID) -> int | None:
    """Record how many items the undo handles; its number of batches, or None when it
    cannot run (the job is failed with the reason)."""
    with session_scope() as session:
        planned = plan_undo(session, job_id)
    if isinstance(planned, str):
        finish(job_id, JobStatus.FAILED, reason=planned)
        return None
    return planned


def write(
    job_id: uuid.UUID, attempt: int, batches: int, show: Callable[[float, int], None]
) -> bool:
    """Commit each remaining undo batch with its conflicts and progress; False: cancelled.

    `show(percent, total)` as for an import. A retry starts after the last committed batch.
    """

    def commit(session: Session, batch_no: int) -> int:
        apply_undo_batch(session, job_id, attempt=attempt, batch_no=batch_no)
        return job_view_of(session, job_id).processed_rows

    return commit_batches(job_id, attempt, batches, show, commit)


def job_view_of(session: Session, job_id: uuid.UUID) -> JobView:
    """The job as it stands in `session`."""
    job = get_job(session, job_id)
    assert job is not None
    return job_view(job)


def complete(job_id: uuid.UUID) -> JobView:
    """End the undo `completed` and mark its import `undone`."""
    with session_scope() as session:
        return job_view(finish_undo(session, job_id))
