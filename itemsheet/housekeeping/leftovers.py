"""Leftovers of work that stopped half-way: rows of ended jobs and unfinished copies.

An attempt keeps its validated rows in `<work dir>/<job>.<attempt>.arrow` (how they were
read beside them, in `.summary`) and removes them when its job ends; its parse answers
through `<job>.<attempt>.result`; an upload writes `<sha>.<id>.partial` beside the file
it stores and a clean-up sets a file aside as
`<sha>.<id>.removing`; a file from an object store is copied to `<work dir>/<sha>`; a
rejected-rows download reads its rows in a folder `<work dir>/rejected-<id>`. Each
writer removes its own file, unless its process was killed first. What is removed here
belongs to nothing that runs: rows only of jobs that have ended, other files only once
they are older than `IMPORTER_LEFTOVER_GRACE_S` (longer than any upload or parse takes),
and never a file of a pending or processing job.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from db.models import ImportJob, JobStatus, utcnow
from db.session import session_scope
from itemsheet.files.storage import PARTIAL, remove_file, unfinished_files
from settings import Settings

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ATTEMPT_FILE = re.compile(rf"(?P<job>{_UUID})\.\d+\.(?P<kind>arrow|summary|result)")
# A remote stored file's local copy (`storage.local_copy_name`): content and URL digests.
STORED_COPY = re.compile(r"(?P<sha>[0-9a-f]{64})-[0-9a-f]{16}")
# A rejected-rows download's scratch folder (`itemsheet.downloads.rejected`).
SCRATCH = re.compile(r"rejected-[\w-]+")
_IN_CHUNK = 500


@dataclass(frozen=True)
class Removed:
    """How many files were (or, in a dry run, would be) removed, and their bytes."""

    files: int = 0
    bytes: int = 0

    def plus(self, size: int) -> Removed:
        """These and one more file of `size` bytes."""
        return Removed(self.files + 1, self.bytes + size)


@dataclass(frozen=True)
class Leftovers:
    """What one sweep removed."""

    work: Removed = Removed()
    """Rows of ended jobs, and copies of stored files that no active job reads."""
    unfinished: Removed = Removed()
    """`.partial`, `.result` and `.removing` files older than the grace period."""


def remove_leftovers(
    settings: Settings, *, dry_run: bool = False, now: datetime | None = None
) -> Leftovers:
    """Remove the leftovers under the work dir and the storage URL (`dry_run`: only count)."""
    older_than = (now or utcnow()) - timedelta(seconds=settings.leftover_grace_s)
    work, unfinished = _sweep_work_dir(settings.work_dir, older_than=older_than, dry_run=dry_run)
    for url, size in unfinished_files(settings.resolved_storage_url(), older_than=older_than):
        if not dry_run:
            remove_file(url)
        unfinished = unfinished.plus(size)
    return Leftovers(work, unfinished)


def _sweep_work_dir(
    work_dir: Path, *, older_than: datetime, dry_run: bool
) -> tuple[Removed, Removed]:
    # The files are listed before the jobs are read: a retried job's new attempt writes a
    # file of a new name, which this sweep then has not seen.
    try:
        files = [
            (p, p.stat()) for p in work_dir.iterdir() if p.is_file() or SCRATCH.fullmatch(p.name)
        ]
    except FileNotFoundError:
        return Removed(), Removed()
    names = [p.name for p, _ in files]
    statuses = _statuses(
        uuid.UUID(m["job"]) for name in names if (m := ATTEMPT_FILE.fullmatch(name))
    )
    in_use = _read_by_active_jobs(
        [m["sha"] for name in names if (m := STORED_COPY.fullmatch(name))]
    )
    work = unfinished = Removed()
    for path, stat in files:
        old = datetime.fromtimestamp(stat.st_mtime, UTC) < older_than
        if match := ATTEMPT_FILE.fullmatch(path.name):
            status = statuses.get(uuid.UUID(match["job"]))
            ended = status is not None and status.is_terminal
            if match["kind"] in ("arrow", "summary"):
                # Rows are useless once their job has ended; with no job at all, only
                # after the grace period (its job may be in another database being set up).
                if not (ended or (status is None and old)):
                    continue
                work = work.plus(stat.st_size)
            else:
                if not old or status in JobStatus.active():
                    continue
                unfinished = unfinished.plus(stat.st_size)
        elif copy := STORED_COPY.fullmatch(path.name):
            if not old or copy["sha"] in in_use:
                continue
            work = work.plus(stat.st_size)
        elif path.name.endswith(PARTIAL):
            if not old:
                continue
            unfinished = unfinished.plus(stat.st_size)
        elif SCRATCH.fullmatch(path.name) and path.is_dir():
            if not old:
                continue
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            unfinished = unfinished.plus(size)
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
            continue
        else:
            continue  # not ours to judge (a spare's output is its owner's)
        if not dry_run:
            path.unlink(missing_ok=True)
    return work, unfinished


def _statuses(job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, JobStatus]:
    """The status of each of these jobs that exists."""
    wanted = sorted(set(job_ids))
    found: dict[uuid.UUID, JobStatus] = {}
    if not wanted:
        return found
    with session_scope(write=False) as session:
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            rows = session.execute(
                select(ImportJob.id, ImportJob.status).where(ImportJob.id.in_(chunk))
            ).all()
            found.update({job_id: status for job_id, status in rows})
    return found


def _read_by_active_jobs(shas: list[str]) -> set[str]:
    """Which of these file hashes a pending or processing job imports."""
    used: set[str] = set()
    if not shas:
        return used
    with session_scope(write=False) as session:
        for start in range(0, len(shas), _IN_CHUNK):
            chunk = shas[start : start + _IN_CHUNK]
            used.update(
                session.scalars(
                    select(ImportJob.file_sha256)
                    .where(
                        ImportJob.file_sha256.in_(chunk), ImportJob.status.in_(JobStatus.active())
                    )
                    .distinct()
                ).all()
            )
    return used
