"""Undo of an import: whether it may start, the undo job, its batches and its end.

An undo is a job like an import (source `undo`, `undo_of` naming the import): it takes the
writer's turn, and each batch undoes one batch of the import from its before-image
(`db.undo_store`) in one transaction with its progress and row errors, under the same
attempt fence as an import's batches, so a resumed or retried undo starts after its last
committed batch and never undoes anything twice. Callers own every transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import ImportJob, ItemUndo, JobSource, JobStatus, OnError, utcnow
from db.repository import add_row_errors, get_job, last_undo_of
from db.undo_store import load_before, restore
from itemsheet.jobs.dispatching import request_run
from itemsheet.jobs.importing import claim_batch, finish_job
from itemsheet.jobs.transitions import move
from itemsheet.sheet.messages import NAME_CHARS, capped, clip


class UndoRefused(Exception):
    """The import cannot be undone (now); `str()` says why in one sentence."""


@dataclass(frozen=True)
class UndoFacts:
    """What the rules read to decide whether an import may be undone."""

    source: JobSource
    status: JobStatus
    dry_run: bool
    finished_at: datetime | None
    undo_removed_at: datetime | None
    # The newest undo of the import, if any: its id and status.
    last_undo: tuple[uuid.UUID, JobStatus] | None


def refusal(facts: UndoFacts, *, now: datetime, undo_days: int) -> str | None:
    """Why the import cannot be undone now, in one sentence; None when it can."""
    if facts.source is JobSource.UNDO:
        return "this job is itself an undo and cannot be undone; import the file again instead"
    if facts.dry_run:
        return "a dry run wrote nothing, so there is nothing to undo"
    if facts.status is JobStatus.UNDONE:
        return "this import has already been undone"
    if facts.status is JobStatus.AWAITING_REVIEW:
        return "this import waits for its review and has written nothing; reject it instead"
    # An active import may still write (or, awaiting review, be confirmed and write): an
    # undo now would restore items it then overwrites, or mark it `undone` while its
    # items stay.
    if facts.status in JobStatus.active():
        return "this import is still running; cancel it or let it end before undoing it"
    if facts.last_undo is not None:
        undo_id, status = facts.last_undo
        if status in JobStatus.under_way():
            return f"an undo of this import is already under way (job {undo_id})"
        if status in JobStatus.retryable():
            return f"an earlier undo of this import ended {status} (job {undo_id}); retry that job"
    expired = (
        undo_days > 0
        and facts.finished_at is not None
        and facts.finished_at < now - timedelta(days=undo_days)
    )
    if facts.undo_removed_at is not None or expired:
        return (
            f"this import ended more than {undo_days} days ago and what its undo needs was"
            " removed (IMPORTER_UNDO_DAYS); it can no longer be undone"
        )
    return None


def undo_facts(session: Session, job: ImportJob) -> UndoFacts:
    """The facts `refusal` reads, for one import."""
    undo = last_undo_of(session, job.id)
    return UndoFacts(
        source=job.source,
        status=job.status,
        dry_run=job.dry_run,
        finished_at=job.finished_at,
        undo_removed_at=job.undo_removed_at,
        last_undo=(undo.id, undo.status) if undo is not None else None,
    )


def create_undo_job(
    session: Session,
    import_id: uuid.UUID,
    *,
    force: bool,
    undo_days: int,
) -> ImportJob:
    """A new pending undo job for an import that may be undone (else `UndoRefused`);
    `LookupError` for an unknown import. The job asks for its run like an upload's."""
    job = get_job(session, import_id, for_update=True)
    if job is None:
        raise LookupError(import_id)
    reason = refusal(undo_facts(session, job), now=utcnow(), undo_days=undo_days)
    if reason is not None:
        raise UndoRefused(reason)
    undo = ImportJob(
        status=JobStatus.PENDING,
        source=JobSource.UNDO,
        filename=clip(f"undo of {job.filename}", NAME_CHARS),
        file_sha256="",
        file_size=0,
        file_uri="",
        on_error=OnError.SKIP,
        dry_run=False,
        batch_size=job.batch_size,
        warnings=[],
        columns=list(job.columns),
        undo_of=job.id,
        undo_force=force,
    )
    session.add(undo)
    session.flush()
    request_run(undo)
    return undo


def plan_undo(session: Session, undo_id: uuid.UUID) -> int | str:
    """Record how many items the undo handles; its number of batches, or why it cannot run."""
    undo = _undo(session, undo_id)
    assert undo.undo_of is not None
    target = get_job(session, undo.undo_of)
    if target is None or target.undo_removed_at is not None:
        return "what this undo needs was removed (IMPORTER_UNDO_DAYS); it can no longer run"
    batches, entries = session.execute(
        select(func.count(), func.coalesce(func.sum(ItemUndo.entries), 0)).where(
            ItemUndo.job_id == undo.undo_of
        )
    ).one()
    undo.total_rows = int(entries)
    return int(batches)


def _image_batch(session: Session, import_id: uuid.UUID, batch_no: int) -> int | None:
    """The import batch that undo batch `batch_no` undoes: the last first."""
    query = (
        select(ItemUndo.batch_no)
        .where(ItemUndo.job_id == import_id)
        .order_by(ItemUndo.batch_no.desc())
        .offset(batch_no - 1)
        .limit(1)
    )
    return session.scalars(query).first()


def apply_undo_batch(
    session: Session,
    undo_id: uuid.UUID,
    *,
    attempt: int,
    batch_no: int,
    now: datetime | None = None,
) -> bool:
    """Undo batch `batch_no` (1-based) with its progress and conflicts; False if it was
    committed before. Fenced like an import's batch (`StaleAttempt`, `CancelRequested`)."""
    undo = claim_batch(session, undo_id, attempt=attempt, batch_no=batch_no)
    if undo is None:
        return False
    if undo.undo_of is None:
        raise LookupError(f"job {undo_id} is not an undo")
    source_batch = _image_batch(session, undo.undo_of, batch_no)
    image = load_before(session, undo.undo_of, source_batch) if source_batch else None
    if image is None:
        raise RuntimeError(f"the before-image of undo batch {batch_no} is missing")
    done = restore(
        session, image, first=undo.processed_rows + 1, force=undo.undo_force, now=now or utcnow()
    )
    add_row_errors(session, undo_id, _errors(done.conflicts))
    undo.deleted += done.deleted
    undo.updated += done.restored
    undo.failed += len(done.conflicts)
    undo.processed_rows += image.entries
    undo.last_batch = batch_no
    undo.updated_at = utcnow()
    return True


def _errors(conflicts: list[tuple[int, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row": [c[0] for c in conflicts],
            "error_column": ["sku"] * len(conflicts),
            "error_value": [c[1] for c in conflicts],
            "error_message": [f"item '{c[1]}' {c[2]}" for c in conflicts],
        },
        schema={
            "row": pl.Int64,
            "error_column": pl.String,
            "error_value": pl.String,
            "error_message": pl.String,
        },
    )


def finish_undo(session: Session, undo_id: uuid.UUID) -> ImportJob:
    """End a finished undo `completed` and mark its import `undone` (its counts stay), in
    one transaction.

    Only an import that has ended is marked: one that runs again (a state the refusals
    prevent, but rows from before them may hold) keeps its status, so a job never says
    `undone` while its items stay; the undo says why in a warning.
    """
    undo = get_job(session, undo_id, for_update=True)
    assert undo is not None and undo.undo_of is not None
    if undo.status is JobStatus.COMPLETED:
        return undo  # a second call: its import was seen to by the first
    finish_job(session, undo_id, JobStatus.COMPLETED)
    target = get_job(session, undo.undo_of, for_update=True)
    if target is None:
        return undo
    if target.status in JobStatus.undoable():
        move(session, target, JobStatus.UNDONE)
    elif target.status is not JobStatus.UNDONE:
        undo.warnings = capped(
            [
                *undo.warnings,
                f"the import was {target.status} when this undo ended, so it is not marked"
                " undone; undo it again once it has ended",
            ]
        )
    return undo


def _undo(session: Session, undo_id: uuid.UUID, *, for_update: bool = False) -> ImportJob:
    job = get_job(session, undo_id, for_update=for_update)
    if job is None or job.undo_of is None:
        raise LookupError(f"undo job {undo_id} does not exist")
    return job
