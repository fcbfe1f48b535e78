"""The writer's turn: one import at a time writes items, so concurrent imports end as if
run one after the other.

A job takes the turn before its first batch and keeps it until it leaves `processing`, so
an import that crashed keeps it until it is resumed or failed. The decision is one
transaction under a lock (a PostgreSQL advisory lock; on SQLite, the write lock).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from db.item_store import lock_for_transaction
from db.models import ImportJob, JobStatus, utcnow
from db.repository import get_job
from db.session import session_scope
from itemsheet.jobs.importing import CancelRequested, StaleAttempt
from itemsheet.sheet.errors import SheetError

WRITER_LOCK = "importer:item-writer"
POLL_S = 0.5


def take_writer_turn(session: Session, job_id: uuid.UUID, *, attempt: int) -> bool:
    """True when `attempt` may write items: no other `processing` job holds the turn.

    Raises `StaleAttempt` / `CancelRequested` like a batch.
    """
    lock_for_transaction(session, WRITER_LOCK)
    job = get_job(session, job_id, for_update=True)
    if job is None or job.attempt != attempt or job.status != JobStatus.PROCESSING:
        raise StaleAttempt(f"job {job_id} is no longer owned by attempt {attempt}")
    if job.cancel_requested:
        raise CancelRequested(f"job {job_id} was cancelled before it wrote")
    if job.writing_since is not None:
        return True
    if _holder(session, job_id) is not None:
        return False
    job.writing_since = utcnow()
    return True


class WriterTurnTimeout(SheetError):
    """Another import held the writer's turn for longer than this one may wait."""


def wait_for_writer_turn(
    job_id: uuid.UUID,
    attempt: int,
    *,
    deadline_s: float,
    poll_s: float = POLL_S,
    on_wait: Callable[[], None] = lambda: None,
) -> None:
    """Wait while another import writes items (one transaction per look), at most
    `deadline_s`; `on_wait` is called at each look (the wait is progress, not a hang)."""
    started = time.monotonic()
    while True:
        with session_scope() as session:
            if take_writer_turn(session, job_id, attempt=attempt):
                return
            holder = _holder(session, job_id)
        on_wait()
        waited = time.monotonic() - started
        if waited >= deadline_s:
            raise WriterTurnTimeout(
                f"another import (job {holder}) was still writing items after this one had"
                f" waited {waited:,.0f} s for its turn; retry the job once it has finished"
            )
        time.sleep(poll_s)


# A job holds the writer's turn from its first batch until it leaves `processing`.
_HOLDS_TURN = (ImportJob.status == JobStatus.PROCESSING) & ImportJob.writing_since.is_not(None)


def _holder(session: Session, job_id: uuid.UUID) -> uuid.UUID | None:
    return session.scalars(
        select(ImportJob.id).where(ImportJob.id != job_id, _HOLDS_TURN).limit(1)
    ).first()


# How far another process's clock may be behind this one's, for `written_besides`.
CLOCK_SLACK = timedelta(seconds=5)


def written_besides(session: Session, job_id: uuid.UUID, *, since: datetime) -> bool:
    """Whether items may have been written by a job other than `job_id` since `since`: one
    holds the writer's turn, took it since then, or ended since then (it may have held it
    meanwhile). Only a job holding the turn writes items."""
    after = since - CLOCK_SLACK
    found = session.scalars(
        select(ImportJob.id)
        .where(
            ImportJob.id != job_id,
            or_(
                _HOLDS_TURN,
                ImportJob.writing_since >= after,
                ImportJob.finished_at >= after,
            ),
        )
        .limit(1)
    ).first()
    return found is not None
