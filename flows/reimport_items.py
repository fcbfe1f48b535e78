"""The `reimport-items` flow: import a file from a path or fsspec URL on a schedule."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any

import fsspec
from prefect import flow, get_run_logger
from prefect.states import Failed
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ImportJob, JobSource, JobStatus, OnError, utcnow
from db.repository import get_job, job_view
from db.session import session_scope
from flows.import_items import import_items
from itemsheet.errors import SheetError
from itemsheet.importing import JobOptions, create_job, create_refused_job, finish_job
from itemsheet.storage import StoredFile, store_stream
from settings import get_settings

# A scheduled job that has not moved for this long is taken as dead, not as running.
STALE_AFTER = timedelta(minutes=30)


def _fetch(source: str, base_url: str, max_bytes: int) -> StoredFile:
    try:
        with fsspec.open(source, "rb") as stream:
            return store_stream(stream, base_url, max_bytes=max_bytes)
    except FileNotFoundError as exc:
        raise SheetError(f"the source '{source}' does not exist") from exc
    except SheetError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())[:200]
        raise SheetError(f"the source '{source}' cannot be read: {text}") from exc


def _last_completed(session: Session, source: str) -> ImportJob | None:
    return session.scalars(
        select(ImportJob)
        .where(ImportJob.source_uri == source, ImportJob.status == JobStatus.COMPLETED)
        .order_by(ImportJob.finished_at.desc())
        .limit(1)
    ).one_or_none()


def _running(session: Session, source: str, *, besides: uuid.UUID) -> ImportJob | None:
    return session.scalars(
        select(ImportJob)
        .where(
            ImportJob.source_uri == source,
            ImportJob.id != besides,
            ImportJob.source == JobSource.SCHEDULE,
            ImportJob.status.in_([JobStatus.PENDING, JobStatus.PROCESSING]),
            ImportJob.updated_at > utcnow() - STALE_AFTER,
        )
        .limit(1)
    ).one_or_none()


@flow(name="reimport-items", flow_run_name="reimport {source}", log_prints=True)
def reimport_items(
    source: str, sheet: str | None = None, on_error: OnError = OnError.SKIP
) -> dict[str, Any]:
    """Import `source` again, unless it is unchanged since the last completed import."""
    logger = get_run_logger()
    settings = get_settings()
    filename = PurePosixPath(source.rstrip("/")).name or source
    options = JobOptions(sheet=sheet, on_error=on_error, batch_size=settings.rows_per_batch())
    try:
        stored = _fetch(source, settings.resolved_storage_url(), settings.max_upload_bytes)
    except SheetError as exc:
        with session_scope() as session:
            create_refused_job(
                session,
                location=source,
                filename=filename,
                size=0,
                source=JobSource.SCHEDULE,
                options=options,
                reason=exc.reason,
            )
        return Failed(message=exc.reason)  # type: ignore[return-value]
    run_import = False
    # One write transaction decides, so two runs for one source cannot both start an import.
    with session_scope() as session:
        job = create_job(
            session,
            stored=stored,
            filename=filename,
            source=JobSource.SCHEDULE,
            options=options,
            source_uri=source,
        )
        running = _running(session, source, besides=job.id)
        last = _last_completed(session, source)
        if running is not None:
            finish_job(
                session,
                job.id,
                JobStatus.CANCELLED,
                reason=f"skipped: the reimport of this source in job {running.id} is still running",
            )
        elif last is not None and last.file_sha256 == stored.sha256:
            job.total_rows = 0
            job.warnings = [f"the file is unchanged since job {last.id}; nothing was written"]
            job.started_at = utcnow()
            finish_job(session, job.id, JobStatus.COMPLETED)
        else:
            run_import = True
        job_id = job.id
    if run_import:
        logger.info("importing %s as job %s", source, job_id)
        import_items(job_id=str(job_id), return_state=True)
    with session_scope(write=False) as session:
        final = get_job(session, uuid.UUID(str(job_id)))
        assert final is not None
        view = job_view(final)
    if final.status == JobStatus.FAILED:
        return Failed(message=final.error or "the import failed")  # type: ignore[return-value]
    return view
