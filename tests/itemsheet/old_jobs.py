"""Jobs and files of a given age, for the retention and leftover tests."""

from __future__ import annotations

import io
import os
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from db.models import ImportJob, JobSource, JobStatus, RowError, utcnow
from db.session import session_scope
from itemsheet.files.storage import StoredFile, store_stream
from itemsheet.jobs.importing import JobOptions, create_job
from settings import get_settings

LONG_AGO = timedelta(days=200)


def age(path: Path, by: timedelta) -> Path:
    """Make `path` look last written `by` ago."""
    stamp = (utcnow() - by).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def store_old(content: bytes, *, stored_ago: timedelta = LONG_AGO) -> StoredFile:
    """Store `content` as an upload did `stored_ago`."""
    file = store_stream(
        io.BytesIO(content), get_settings().resolved_storage_url(), max_bytes=1_000_000
    )
    age(Path(file.uri), stored_ago)
    return file


def add_job(
    file: StoredFile, status: JobStatus, *, ended_ago: timedelta | None = None, errors: int = 0
) -> uuid.UUID:
    """A job of `file` with `errors` row errors (and 7 items created), ended `ended_ago`."""
    with session_scope() as session:
        job = create_job(
            session,
            stored=file,
            filename="items.xlsx",
            source=JobSource.UPLOAD,
            options=JobOptions(),
        )
        job.status = status
        job.created, job.failed, job.total_rows, job.processed_rows = 7, errors, 7 + errors, 7
        job.created_at = utcnow() - LONG_AGO
        if ended_ago is not None:
            job.finished_at = utcnow() - ended_ago
        session.add_all(
            RowError(job_id=job.id, row=n + 2, column="price", value="x", message="bad price")
            for n in range(errors)
        )
        return job.id


def job_row(job_id: uuid.UUID) -> ImportJob:
    """The job as stored now."""
    with session_scope(write=False) as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        return job


def error_count(job_id: uuid.UUID) -> int:
    """How many row errors the job has now."""
    with session_scope(write=False) as session:
        query = select(func.count()).select_from(RowError).where(RowError.job_id == job_id)
        return int(session.scalar(query) or 0)
