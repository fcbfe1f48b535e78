"""Queries on import jobs and their row errors; callers own the transaction."""

from __future__ import annotations

import uuid
from typing import Any

import polars as pl
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from db.models import ImportJob, JobStatus, RowError

ERROR_RECORD_COLUMNS = ("row", "column", "value", "message")


def get_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> ImportJob | None:
    """One job by id; `for_update` locks its row until the transaction ends (PostgreSQL)."""
    query = select(ImportJob).where(ImportJob.id == job_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def last_undo_of(session: Session, import_id: uuid.UUID) -> ImportJob | None:
    """The newest undo job of an import."""
    query = (
        select(ImportJob)
        .where(ImportJob.undo_of == import_id)
        .order_by(ImportJob.created_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def undo_under_way(session: Session, import_id: uuid.UUID) -> ImportJob | None:
    """The import's undo job while it is pending or running, if any."""
    undo = last_undo_of(session, import_id)
    return undo if undo is not None and undo.status in JobStatus.under_way() else None


def add_row_errors(session: Session, job_id: uuid.UUID, errors: pl.DataFrame) -> None:
    """Store failed rows; `errors` has columns row, error_column, error_value, error_message
    and, optionally, `skipped` (true: the import's mode left the row alone)."""
    if errors.is_empty():
        return
    if "skipped" not in errors.columns:
        errors = errors.with_columns(skipped=pl.lit(False))
    records = [
        {
            "job_id": job_id,
            "row": row,
            "column": column,
            "value": value,
            "message": message,
            "skipped": skipped,
        }
        for row, column, value, message, skipped in errors.select(
            "row", "error_column", "error_value", "error_message", "skipped"
        ).iter_rows()
    ]
    session.execute(insert(RowError), records)


def delete_row_errors(session: Session, job_id: uuid.UUID) -> int:
    """Forget a job's row errors (before they are written again in one go); how many."""
    result = session.execute(delete(RowError).where(RowError.job_id == job_id))
    return int(getattr(result, "rowcount", 0) or 0)


def list_row_errors(
    session: Session,
    job_id: uuid.UUID,
    *,
    limit: int = 100,
    offset: int = 0,
    after_row: int | None = None,
) -> list[dict[str, Any]]:
    """A page of a job's row errors, in sheet order: after row `after_row` (by key, the
    index's own order), or skipping `offset` errors."""
    query = select(RowError.row, RowError.column, RowError.value, RowError.message).where(
        RowError.job_id == job_id
    )
    if after_row is not None:
        query = query.where(RowError.row > after_row)
    rows = session.execute(
        query.order_by(RowError.row, RowError.id).limit(limit).offset(offset)
    ).all()
    return [dict(zip(ERROR_RECORD_COLUMNS, r, strict=True)) for r in rows]


def count_row_errors(session: Session, job_id: uuid.UUID) -> int:
    """How many row errors a job has."""
    return session.scalar(select(func.count()).where(RowError.job_id == job_id)) or 0
