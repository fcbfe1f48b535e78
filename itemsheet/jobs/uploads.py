"""The upload service: sniff a received file, store it by content, refuse a duplicate, open a job.

Nothing here parses the workbook: a request only checks the first bytes, stores the file and
creates a pending job; the flow run reads it. Callers own every transaction.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from db.item_store import lock_for_transaction
from db.models import ImportJob, JobSource, JobStatus
from itemsheet.files.storage import StoredFile, store_path, store_stream
from itemsheet.jobs.dispatching import request_run
from itemsheet.jobs.importing import JobOptions, create_job, create_refused_job
from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.formats import SNIFF_BYTES, UNSUPPORTED, Container, sniff_container
from settings import get_settings

DEFAULT_FILENAME = "upload"


class UnsupportedFile(SheetError):
    """The first bytes show the file is no spreadsheet or CSV we can read."""


class DuplicateImport(Exception):
    """The same file is already being imported with the same options (or waits for its
    review, a guardrail's included: answering it is what the person wants, not a copy)."""

    def __init__(self, job_id: uuid.UUID, status: JobStatus = JobStatus.PROCESSING) -> None:
        self.job_id, self.status = job_id, status
        if status is JobStatus.AWAITING_REVIEW:
            text = (
                f"this file waits for a review with the same options (job {job_id});"
                " confirm or reject it there, or send force=true to import it again"
            )
        else:
            text = (
                f"this file is already being imported with the same options (job {job_id});"
                " follow that job, or send force=true to import it again"
            )
        super().__init__(text)


def sniff_upload(head: bytes, encoding: str | None = None) -> Container:
    """The container the first bytes announce (a text file's in the encoding a person
    named, if any); `UnsupportedFile` names the accepted formats."""
    container = sniff_container(head, encoding)
    if container is None:
        raise UnsupportedFile(UNSUPPORTED)
    return container


def store_upload(
    stream: BinaryIO, *, base_url: str, max_bytes: int, encoding: str | None = None
) -> StoredFile:
    """Sniff a seekable upload, then store it under its sha256 (`FileTooLarge` past the limit)."""
    sniff_upload(stream.read(SNIFF_BYTES), encoding)
    stream.seek(0)
    return store_stream(stream, base_url, max_bytes=max_bytes)


def display_filename(raw: str | None) -> str:
    """The client's file name without any folder part, fit for display; never used as a path."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or DEFAULT_FILENAME


def _same(column: InstrumentedAttribute[str | None], value: str | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def find_active_duplicate(
    session: Session, *, sha256: str, options: JobOptions
) -> ImportJob | None:
    """The newest pending or processing job of the same file with the same options, if any."""
    query = (
        select(ImportJob)
        .where(
            ImportJob.file_sha256 == sha256,
            ImportJob.status.in_(JobStatus.active()),
            ImportJob.on_error == options.on_error,
            ImportJob.dry_run == options.dry_run,
            ImportJob.mode == options.mode,
            _same(ImportJob.sheet, options.sheet),
            _same(ImportJob.encoding, options.encoding),
            _same(ImportJob.delimiter, options.delimiter),
            _same(ImportJob.decimal, options.decimal),
        )
        .order_by(ImportJob.created_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def create_upload_job(
    session: Session,
    *,
    stored: StoredFile,
    filename: str | None,
    options: JobOptions,
    force: bool = False,
) -> ImportJob:
    """A pending job (source `upload`) for a stored file; `DuplicateImport` unless `force`."""
    # Two identical uploads arriving together must not both pass the duplicate check.
    lock_for_transaction(session, f"upload:{stored.sha256}")
    if not force:
        duplicate = find_active_duplicate(session, sha256=stored.sha256, options=options)
        if duplicate is not None:
            raise DuplicateImport(duplicate.id, duplicate.status)
    job = create_job(
        session,
        stored=stored,
        filename=display_filename(filename),
        source=JobSource.UPLOAD,
        options=options,
    )
    request_run(job)
    return job


def job_for_path(
    session: Session,
    path: Path,
    *,
    source: JobSource,
    options: JobOptions,
    source_uri: str | None = None,
    ask_for_run: bool = False,
) -> ImportJob:
    """Store the local file at `path` (within the upload limit) and create its job.

    A file that cannot be stored (missing, unreadable, too big) gets a job all the same,
    already `failed` with the one-line reason. With `ask_for_run`, the job asks for a flow
    run, as an upload's does.
    """
    settings = get_settings()
    try:
        stored = store_path(
            path, settings.resolved_storage_url(), max_bytes=settings.max_upload_bytes
        )
    except SheetError as exc:
        return create_refused_job(
            session,
            location=str(path),
            filename=path.name,
            size=path.stat().st_size if path.is_file() else 0,
            source=source,
            options=options,
            reason=exc.reason,
        )
    job = create_job(
        session,
        stored=stored,
        filename=path.name,
        source=source,
        options=options,
        source_uri=source_uri,
    )
    if ask_for_run:
        request_run(job)
    return job
