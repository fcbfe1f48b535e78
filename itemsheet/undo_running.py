"""One attempt at an undo, step by step: what the `undo-import` flow's tasks carry out.

Like an import's attempt (`itemsheet.running`): `running.begin` takes the job, its
heartbeat beats, then `plan` counts the batches, `write` waits for the writer's turn and
commits each remaining batch, and `finish` ends the undo and marks its import `undone`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

from db.models import JobStatus
from db.repository import get_job
from db.session import session_scope
from itemsheet.holds import hold_if_asked
from itemsheet.importing import CancelRequested
from itemsheet.jobs import JobView, job_view
from itemsheet.running import BATCH_GAP_S, SHOW_EVERY_S, finish, touch
from itemsheet.undoing import apply_undo_batch, finish_undo, plan_undo
from itemsheet.writer_turn import wait_for_writer_turn
from settings import get_settings


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
    settings = get_settings()
    with session_scope(write=False) as session:
        job = job_view_of(session, job_id)
        start, total, filename = job.last_batch + 1, job.total_rows or 0, job.filename
        done = job.processed_rows

    def percent(rows: int) -> float:
        return 100.0 * min(rows, total) / max(total, 1)

    show(percent(done), total)
    try:
        wait_for_writer_turn(job_id, attempt, deadline_s=settings.writer_wait_s, on_wait=touch)
    except CancelRequested:
        return False
    shown = time.monotonic()
    for batch_no in range(start, batches + 1):
        hold_if_asked(settings.test_hold_dir, filename, done, on_wait=touch)
        try:
            with session_scope() as session:
                apply_undo_batch(session, job_id, attempt=attempt, batch_no=batch_no)
                done = job_view_of(session, job_id).processed_rows
        except CancelRequested:
            return False
        touch()
        time.sleep(BATCH_GAP_S)
        if time.monotonic() - shown >= SHOW_EVERY_S or batch_no == batches:
            show(percent(done), total)
            shown = time.monotonic()
    return True


def job_view_of(session: Session, job_id: uuid.UUID) -> JobView:
    """The job as it stands in `session`."""
    job = get_job(session, job_id)
    assert job is not None
    return job_view(job)


def complete(job_id: uuid.UUID) -> JobView:
    """End the undo `completed` and mark its import `undone`."""
    with session_scope() as session:
        return job_view(finish_undo(session, job_id))
