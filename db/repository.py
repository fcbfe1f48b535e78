"""Queries on import jobs and their row errors; callers own the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from db.models import ImportJob, JobSource, JobStatus, RowError, utcnow

ERROR_RECORD_COLUMNS = ("row", "column", "value", "message")


def get_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> ImportJob | None:
    """One job by id; `for_update` locks its row until the transaction ends (PostgreSQL)."""
    query = select(ImportJob).where(ImportJob.id == job_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def list_jobs(
    session: Session,
    *,
    limit: int = 20,
    status: JobStatus | None = None,
    source: JobSource | None = None,
    before: datetime | None = None,
) -> Sequence[ImportJob]:
    """Jobs newest first, optionally filtered, for history views."""
    query = select(ImportJob).order_by(ImportJob.created_at.desc(), ImportJob.id.desc())
    if status is not None:
        query = query.where(ImportJob.status == status)
    if source is not None:
        query = query.where(ImportJob.source == source)
    if before is not None:
        query = query.where(ImportJob.created_at < before)
    return session.scalars(query.limit(limit)).all()


def add_row_errors(session: Session, job_id: uuid.UUID, errors: pl.DataFrame) -> None:
    """Store failed rows; `errors` has columns row, error_column, error_value, error_message."""
    if errors.is_empty():
        return
    records = [
        {"job_id": job_id, "row": row, "column": column, "value": value, "message": message}
        for row, column, value, message in errors.select(
            "row", "error_column", "error_value", "error_message"
        ).iter_rows()
    ]
    session.execute(insert(RowError), records)


def delete_row_errors(session: Session, job_id: uuid.UUID) -> None:
    """Forget a job's row errors (before they are written again in one go)."""
    session.execute(delete(RowError).where(RowError.job_id == job_id))


def list_row_errors(
    session: Session, job_id: uuid.UUID, *, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """A page of a job's row errors, in sheet order."""
    rows = session.execute(
        select(RowError.row, RowError.column, RowError.value, RowError.message)
        .where(RowError.job_id == job_id)
        .order_by(RowError.row, RowError.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [dict(zip(ERROR_RECORD_COLUMNS, r, strict=True)) for r in rows]


def count_row_errors(session: Session, job_id: uuid.UUID) -> int:
    """How many row errors a job has."""
    return session.scalar(select(func.count()).where(RowError.job_id == job_id)) or 0


def job_view(job: ImportJob, *, now: datetime | None = None) -> dict[str, Any]:
    """The job as clients see it (CLI `--json` and the progress endpoint share this)."""
    now = now or utcnow()
    total = job.total_rows
    if total:
        percent = round(100.0 * job.processed_rows / total, 1)
    else:
        percent = 100.0 if job.status == JobStatus.COMPLETED else 0.0
    elapsed = None
    if job.started_at is not None:
        elapsed = round(((job.finished_at or now) - job.started_at).total_seconds(), 3)
    rate = round(job.processed_rows / elapsed, 1) if elapsed and job.processed_rows else 0.0
    return {
        "job_id": str(job.id),
        "status": str(job.status),
        "source": str(job.source),
        "filename": job.filename,
        "total_rows": total,
        "processed_rows": job.processed_rows,
        "percent": percent,
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "failed": job.failed,
        "error": job.error,
        "warnings": list(job.warnings or []),
        "dry_run": job.dry_run,
        "on_error": str(job.on_error),
        "sheet": job.sheet_name or job.sheet,
        "elapsed_s": elapsed,
        "rows_per_s": rate,
        "last_batch": job.last_batch,
        "attempt": job.attempt,
        "file_sha256": job.file_sha256,
        "file_size": job.file_size,
        "flow_run_id": str(job.flow_run_id) if job.flow_run_id else None,
        "waiting_for": job.waiting_for,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
