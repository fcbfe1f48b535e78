"""Importing a file again from its source (a path or fsspec URL), on a schedule.

The `reimport-items` flow only fetches a plan here and, when it says so, runs the import.
The rules: a source is fetched and stored like an upload; a source that is still being
reimported by a live job is skipped; a file unchanged since the last completed import of
the source completes at once with nothing written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import fsspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.item_store import lock_for_transaction
from db.models import ImportJob, JobSource, JobStatus, OnError, utcnow
from db.session import session_scope
from itemsheet.errors import SheetError
from itemsheet.importing import JobOptions, create_job, create_refused_job, finish_job
from itemsheet.storage import StoredFile, store_stream
from settings import get_settings

# A scheduled job that has not moved for this long is taken as dead, not as running.
STALE_AFTER = timedelta(minutes=30)


@dataclass(frozen=True)
class Plan:
    """The job made for one reimport, and whether its import must run."""

    job_id: uuid.UUID
    run_import: bool


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


def _location(source: str) -> tuple[str, str, tuple[str, ...]]:
    """(scheme, host, path parts) of a path or URL, with `.` and `..` resolved."""
    parts = urlsplit(source)
    if len(parts.scheme) <= 1:  # a local path (or a Windows drive letter)
        resolved = Path(source).expanduser().resolve()
        return "file", "", resolved.parts
    if parts.scheme == "file":
        return "file", "", Path(parts.path).resolve().parts
    path = PurePosixPath("/" + parts.path.lstrip("/"))
    clean: list[str] = []
    for part in path.parts[1:]:
        if part == "..":
            if clean:
                clean.pop()
        elif part not in ("", "."):
            clean.append(part)
    return parts.scheme.lower(), parts.netloc.lower(), ("/", *clean)


def source_allowed(source: str, prefixes: tuple[str, ...]) -> bool:
    """True when `source` lies under one of `prefixes` (whole path segments, same scheme
    and host); `..` cannot climb out of a prefix."""
    scheme, host, path = _location(source)
    for prefix in prefixes:
        p_scheme, p_host, p_path = _location(prefix)
        if (scheme, host) == (p_scheme, p_host) and path[: len(p_path)] == p_path:
            return True
    return False


def _check_allowed(source: str, prefixes: tuple[str, ...]) -> None:
    if not source_allowed(source, prefixes):
        raise SheetError(
            f"the source '{source[:200]}' is not under a location reimports may read;"
            " add its folder or URL prefix to IMPORTER_REIMPORT_ALLOWED"
        )


def plan_reimport(source: str, *, sheet: str | None, on_error: OnError) -> Plan:
    """Fetch `source` and make its job; only a changed file, not being reimported, runs.

    A source outside the allowed locations, or one that cannot be fetched, gives a failed
    job with the reason.
    """
    settings = get_settings()
    filename = PurePosixPath(source.rstrip("/")).name or source
    options = JobOptions(sheet=sheet, on_error=on_error, batch_size=settings.rows_per_batch())
    try:
        _check_allowed(source, settings.reimport_prefixes())
        stored = _fetch(source, settings.resolved_storage_url(), settings.max_upload_bytes)
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
            return Plan(job.id, run_import=True)
        return Plan(job.id, run_import=False)
