"""Retention of before-images: an import can be undone for `IMPORTER_UNDO_DAYS` after it ended.

After that its `item_undo` rows are deleted and `undo_removed_at` is set, so its undo is
refused with that reason (and an undo job that had not begun fails with it); the records
of what undos restored (`item_restored`) go after the same time. One
transaction per import, under its row lock; an import with an undo under way keeps its
before-images until that undo ends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select

from db.models import ImportJob, ItemRestored, ItemUndo, JobStatus, utcnow
from db.repository import get_job, undo_under_way
from db.session import session_scope
from settings import Settings

JOBS_PER_READ = 100


@dataclass(frozen=True)
class UndoExpired:
    """What undo retention let go of: imports, their batch before-images and their bytes."""

    imports: int = 0
    batches: int = 0
    bytes: int = 0

    def __add__(self, other: UndoExpired) -> UndoExpired:
        return UndoExpired(
            self.imports + other.imports, self.batches + other.batches, self.bytes + other.bytes
        )


def expire_before_images(
    settings: Settings, *, dry_run: bool = False, now: datetime | None = None
) -> UndoExpired:
    """Delete the before-images of imports that ended more than `undo_days` ago."""
    if settings.undo_days <= 0:
        return UndoExpired()
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.undo_days)
    total, after = UndoExpired(), None
    while ids := _expired_imports(cutoff, after=after):
        for job_id in ids:
            total += _expire(job_id, cutoff=cutoff, now=now, dry_run=dry_run)
        after = ids[-1]
    if not dry_run:
        # What undos restored matters only to undoing imports before them, which are past
        # retention by now. Kept a little long, a record is harmless; gone early, it would
        # at worst make such an undo report a conflict: never overwrite silently.
        with session_scope() as session:
            session.execute(delete(ItemRestored).where(ItemRestored.restored_at < cutoff))
    return total


def _expired_imports(cutoff: datetime, *, after: uuid.UUID | None) -> list[uuid.UUID]:
    """The next few imports, by id, past undo retention that still keep before-images."""
    query = (
        select(ImportJob.id)
        .where(
            ImportJob.status.in_(JobStatus.terminal()),
            ImportJob.undo_removed_at.is_(None),
            ImportJob.finished_at < cutoff,
            exists().where(ItemUndo.job_id == ImportJob.id),
        )
        .order_by(ImportJob.id)
        .limit(JOBS_PER_READ)
    )
    if after is not None:
        query = query.where(ImportJob.id > after)
    with session_scope(write=False) as session:
        return list(session.scalars(query).all())


def _expire(job_id: uuid.UUID, *, cutoff: datetime, now: datetime, dry_run: bool) -> UndoExpired:
    """One transaction: one import lets go of its before-images."""
    with session_scope(write=not dry_run) as session:
        job = get_job(session, job_id, for_update=not dry_run)
        if job is None or job.finished_at is None or job.finished_at >= cutoff:
            return UndoExpired()
        if job.undo_removed_at is not None or undo_under_way(session, job_id):
            return UndoExpired()
        batches, size = session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(func.length(ItemUndo.created) + func.length(ItemUndo.changed)), 0
                ),
            ).where(ItemUndo.job_id == job_id)
        ).one()
        if not dry_run:
            session.execute(delete(ItemUndo).where(ItemUndo.job_id == job_id))
            job.undo_removed_at = now
        return UndoExpired(1, int(batches), int(size))
