"""Retention: an ended job lets go of its stored file and row errors after a while.

A job that ended (completed, failed or cancelled) more than `IMPORTER_RETENTION_DAYS` ago
loses its row errors, and its stored file unless a job still kept refers to the same file:
files are stored by content, so one file can belong to many jobs (a daily reimport of an
unchanged file makes a job a day of one file). The job row stays, counts and all, with
`files_removed_at` set: the history is kept, but such a job can no longer be retried.

Jobs are handled per stored file, one transaction each, which locks the rows of every job
of that file: a retry of one of them waits, then finds its file gone and is refused, and
none of them can start meanwhile. Only a file at the content address under the storage URL
is ever removed; a job refused before its file could be stored names the user's own file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from db.models import ImportJob, JobStatus, utcnow
from db.repository import count_row_errors, delete_row_errors
from db.session import session_scope
from itemsheet.files.storage import discard_aside, put_back, set_aside, stored_size, stored_uri
from itemsheet.housekeeping.leftovers import Leftovers, Removed, remove_leftovers
from itemsheet.housekeeping.undo_retention import UndoExpired, expire_before_images
from itemsheet.sheet.sizes import human_size
from settings import Settings

FILES_PER_READ = 100


def expires(job: ImportJob, cutoff: datetime) -> bool:
    """The job ended before `cutoff` and still has its files."""
    return (
        job.status.is_terminal
        and job.files_removed_at is None
        and job.finished_at is not None
        and job.finished_at < cutoff
    )


def needs_file(job: ImportJob, cutoff: datetime) -> bool:
    """The job may still read its stored file: it is active, or ended and still kept."""
    return job.files_removed_at is None and not expires(job, cutoff)


@dataclass(frozen=True)
class Expired:
    """What retention let go of."""

    jobs: int = 0
    row_errors: int = 0
    stored: Removed = field(default_factory=Removed)

    def __add__(self, other: Expired) -> Expired:
        return Expired(
            self.jobs + other.jobs,
            self.row_errors + other.row_errors,
            Removed(self.stored.files + other.stored.files, self.stored.bytes + other.stored.bytes),
        )


@dataclass(frozen=True)
class CleanUp:
    """What one clean-up removed (or, in a dry run, would remove)."""

    dry_run: bool
    retention_days: int
    expired: Expired
    leftovers: Leftovers
    # Before-images past IMPORTER_UNDO_DAYS (`itemsheet.housekeeping.undo_retention`).
    undo_days: int = 0
    undo: UndoExpired = field(default_factory=UndoExpired)

    @property
    def removed_bytes(self) -> int:
        """Every byte removed, stored files and leftovers."""
        left = self.leftovers
        return self.expired.stored.bytes + left.work.bytes + left.unfinished.bytes

    def as_dict(self) -> dict[str, int | bool]:
        """The figures as one flat JSON object."""
        expired, left = self.expired, self.leftovers
        return {
            "dry_run": self.dry_run,
            "retention_days": self.retention_days,
            "jobs": expired.jobs,
            "row_errors": expired.row_errors,
            "stored_files": expired.stored.files,
            "stored_bytes": expired.stored.bytes,
            "work_files": left.work.files,
            "work_bytes": left.work.bytes,
            "unfinished_files": left.unfinished.files,
            "unfinished_bytes": left.unfinished.bytes,
            "removed_bytes": self.removed_bytes,
            "undo_days": self.undo_days,
            "undo_imports": self.undo.imports,
            "undo_batches": self.undo.batches,
            "undo_bytes": self.undo.bytes,
        }

    def lines(self) -> list[str]:
        """The report as a few lines of text."""
        verb = "would remove" if self.dry_run else "removed"
        expired, left = self.expired, self.leftovers
        if self.retention_days <= 0:
            lines = ["retention is off (IMPORTER_RETENTION_DAYS <= 0): files and row errors kept"]
        else:
            lines = [
                f"jobs ended over {self.retention_days} days ago: {expired.jobs:,}",
                f"  row errors: {verb} {expired.row_errors:,}",
                f"  stored files: {verb} {_files(expired.stored)}",
            ]
        return [
            *lines,
            f"  work files of ended jobs: {verb} {_files(left.work)}",
            f"  unfinished uploads and parses: {verb} {_files(left.unfinished)}",
            f"{verb} {human_size(self.removed_bytes)} in all",
            f"before-images of imports ended over {self.undo_days} days ago:"
            f" {verb} {self.undo.imports:,} ({human_size(self.undo.bytes)})",
        ]


def _files(removed: Removed) -> str:
    return f"{removed.files:,} ({human_size(removed.bytes)})"


def clean_up(settings: Settings, *, dry_run: bool = False, now: datetime | None = None) -> CleanUp:
    """Apply retention to ended jobs, then remove leftovers (`dry_run`: only count)."""
    now = now or utcnow()
    expired = expire_jobs(settings, dry_run=dry_run, now=now)
    leftovers = remove_leftovers(settings, dry_run=dry_run, now=now)
    undo = expire_before_images(settings, dry_run=dry_run, now=now)
    return CleanUp(dry_run, settings.retention_days, expired, leftovers, settings.undo_days, undo)


def expire_jobs(
    settings: Settings, *, dry_run: bool = False, now: datetime | None = None
) -> Expired:
    """Remove the row errors and, where no kept job needs it, the stored file of every job
    that ended more than `retention_days` ago."""
    if settings.retention_days <= 0:
        return Expired()
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.retention_days)
    # A stored file touched this recently was just uploaded again: its new job needs it.
    touched_before = now - timedelta(seconds=settings.leftover_grace_s)
    base_url = settings.resolved_storage_url()
    total, after = Expired(), None
    while uris := _files_of_expired_jobs(cutoff, after=after):
        for uri in uris:
            total += _expire_file(
                uri,
                base_url=base_url,
                cutoff=cutoff,
                touched_before=touched_before,
                now=now,
                dry_run=dry_run,
            )
        after = uris[-1]
    return total


def _files_of_expired_jobs(cutoff: datetime, *, after: str | None) -> list[str]:
    """The next few file URIs, in order, that a job past retention still has."""
    query = (
        select(ImportJob.file_uri)
        .where(
            ImportJob.status.in_(JobStatus.terminal()),
            ImportJob.files_removed_at.is_(None),
            ImportJob.finished_at < cutoff,
        )
        .distinct()
        .order_by(ImportJob.file_uri)
        .limit(FILES_PER_READ)
    )
    if after is not None:
        query = query.where(ImportJob.file_uri > after)
    with session_scope(write=False) as session:
        return list(session.scalars(query).all())


def _expire_file(
    uri: str,
    *,
    base_url: str,
    cutoff: datetime,
    touched_before: datetime,
    now: datetime,
    dry_run: bool,
) -> Expired:
    """One transaction: the expired jobs of one file let go of it and of their row errors."""
    aside: str | None = None
    try:
        with session_scope(write=not dry_run) as session:
            query = select(ImportJob).where(ImportJob.file_uri == uri).order_by(ImportJob.id)
            jobs = session.scalars(query if dry_run else query.with_for_update()).all()
            ending = [job for job in jobs if expires(job, cutoff)]
            errors = 0
            for job in ending:
                if dry_run:
                    errors += count_row_errors(session, job.id)
                else:
                    errors += delete_row_errors(session, job.id)
                    job.files_removed_at = now
            done = Expired(len(ending), errors)
            sha = ending[0].file_sha256 if ending else ""
            if not sha or uri != stored_uri(base_url, sha):
                return done  # nothing expired, or not a file of ours
            if any(needs_file(job, cutoff) for job in jobs):
                return done
            if dry_run:
                size = stored_size(uri, touched_before=touched_before)
                return done if size is None else done + Expired(stored=Removed(1, size))
            # Set aside while the rows are locked; removed once the jobs say so for good.
            aside = set_aside(uri)
    except BaseException:
        if aside is not None:
            put_back(aside, uri)
        raise
    if aside is None:
        return done
    size = discard_aside(aside, uri, touched_before=touched_before)
    return done if size is None else done + Expired(stored=Removed(1, size))
