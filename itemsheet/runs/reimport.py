"""Importing a file again from its source (a path or fsspec URL), on a schedule.

The `reimport-items` flow only fetches a plan here and, when it says so, runs the import.
The rules: a source is fetched and stored like an upload; a source that is still being
reimported by a live job is skipped; a file unchanged since the last completed import of
the source completes at once with nothing written. Whether a source lies under an allowed
location is decided on fsspec's own parse of it, and the file read is the one decided on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath

import fsspec
from fsspec.core import split_protocol, url_to_fs
from fsspec.implementations.local import LocalFileSystem
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from db.item_store import lock_for_transaction
from db.models import ImportJob, ImportMode, JobSource, JobStatus, OnError, utcnow
from db.session import session_scope
from itemsheet.files.storage import StoredFile, store_stream
from itemsheet.jobs.importing import JobOptions, create_job, create_refused_job, finish_job
from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.messages import clip
from itemsheet.sheet.source_urls import form_refusal
from settings import get_settings

# A scheduled job that has not moved for this long is taken as dead, not as running.
STALE_AFTER = timedelta(minutes=30)


@dataclass(frozen=True)
class Plan:
    """The job made for one reimport, and whether its import must run."""

    job_id: uuid.UUID
    run_import: bool


def _fetch(source: str, where: Location, base_url: str, max_bytes: int) -> StoredFile:
    """Store the file at `where`: the very file the allow-list was asked about."""
    try:
        fs = LocalFileSystem() if where.protocol == "file" else url_to_fs(source)[0]
        with fs.open(where.path, "rb") as stream:
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
    """A scheduled import of `source` that is under way, or waits for a person (one a
    guardrail held back: until it is answered or expires, later rounds add no other)."""
    return session.scalars(
        select(ImportJob)
        .where(
            ImportJob.source_uri == source,
            ImportJob.id != besides,
            ImportJob.source == JobSource.SCHEDULE,
            or_(
                and_(
                    ImportJob.status.in_(JobStatus.under_way()),
                    ImportJob.updated_at > utcnow() - STALE_AFTER,
                ),
                ImportJob.status == JobStatus.AWAITING_REVIEW,
            ),
        )
        .limit(1)
    ).one_or_none()


@dataclass(frozen=True)
class Location:
    """Where fsspec reads a source, on its own parse of the URL: the file system (its
    protocol, and what the URL tells it besides the path, such as an FTP host), the path
    it opens and that path's segments."""

    protocol: str
    options: str
    path: str
    parts: tuple[str, ...]


def locate(source: str) -> Location:
    """Where `source` is read from; ValueError (the end of a sentence about the source)
    for one no reimport reads.

    A local path is resolved (`~`, `..`, symbolic links), as the file it opens. Object
    stores do not resolve `.` or `..`, so a path naming them is refused rather than read
    as a key the allow-list did not see.
    """
    if (refused := form_refusal(source)) is not None:
        raise ValueError(refused)
    protocol, _ = split_protocol(source)
    try:
        system = fsspec.get_filesystem_class(protocol or "file")
    except (ImportError, ValueError) as exc:
        raise ValueError(f"cannot be read: {clip(str(exc))}") from exc
    path: str = system._strip_protocol(source)
    if issubclass(system, LocalFileSystem):
        resolved = Path(path).resolve()
        return Location("file", "", str(resolved), resolved.parts)
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError(
            "names '.' or '..' as a folder, which an object store does not resolve; name the"
            " file by its own path"
        )
    name = system.protocol if isinstance(system.protocol, str) else system.protocol[0]
    options = repr(sorted(system._get_kwargs_from_urls(source).items()))
    return Location(name, options, path, PurePosixPath("/", path).parts)


def _under(where: Location, prefix: str) -> bool:
    try:
        top = locate(prefix)
    except ValueError:
        return False  # refused at start-up too (settings); it allows nothing
    same_system = (where.protocol, where.options) == (top.protocol, top.options)
    return same_system and where.parts[: len(top.parts)] == top.parts


def source_allowed(source: str, prefixes: tuple[str, ...]) -> bool:
    """True when `source` lies under one of `prefixes` (whole path segments, same file
    system); neither `..`, a link, a host nor `~` gets out of a prefix."""
    try:
        where = locate(source)
    except ValueError:
        return False
    return any(_under(where, prefix) for prefix in prefixes)


def _check_allowed(source: str, prefixes: tuple[str, ...]) -> Location:
    try:
        where = locate(source)
    except ValueError as exc:
        raise SheetError(f"the source '{source[:200]}' {exc}") from None
    if not any(_under(where, prefix) for prefix in prefixes):
        raise SheetError(
            f"the source '{source[:200]}' is not under a location reimports may read;"
            " add its folder or URL prefix to IMPORTER_REIMPORT_ALLOWED"
        )
    return where


def plan_reimport(
    source: str, *, sheet: str | None, on_error: OnError, mode: ImportMode = ImportMode.UPSERT
) -> Plan:
    """Fetch `source` and make its job; only a changed file, not being reimported, runs.

    A source outside the allowed locations, or one that cannot be fetched, gives a failed
    job with the reason.
    """
    settings = get_settings()
    filename = PurePosixPath(source.rstrip("/")).name or source
    options = JobOptions(
        sheet=sheet, on_error=on_error, mode=mode, batch_size=settings.rows_per_batch()
    )
    try:
        where = _check_allowed(source, settings.reimport_prefixes())
        stored = _fetch(source, where, settings.resolved_storage_url(), settings.max_upload_bytes)
    except SheetError as exc:
        with session_scope() as session:
            refused = create_refused_job(
                session,
                location=source,
                filename=filename,
                size=0,
                source=JobSource.SCHEDULE,
                options=options,
                reason=exc.reason,
            )
            return Plan(refused.id, run_import=False)
    # One write transaction decides, under a lock per source (SQLite's write lock holds it
    # anyway), so two runs for one source cannot both start an import.
    with session_scope() as session:
        lock_for_transaction(session, f"reimport:{source}")
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
            state = (
                "waits for a review"
                if running.status is JobStatus.AWAITING_REVIEW
                else "is still running"
            )
            finish_job(
                session,
                job.id,
                JobStatus.CANCELLED,
                reason=f"skipped: the reimport of this source in job {running.id} {state}",
            )
        elif last is not None and last.file_sha256 == stored.sha256:
            job.total_rows = 0
            job.warnings = [f"the file is unchanged since job {last.id}; nothing was written"]
            job.started_at = utcnow()
            finish_job(session, job.id, JobStatus.COMPLETED)
        else:
            return Plan(job.id, run_import=True)
        return Plan(job.id, run_import=False)
