"""Retention and leftovers on a real database and real files under the storage dir."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from db.models import ImportJob, JobSource, JobStatus, utcnow
from db.session import session_scope
from itemsheet.files.storage import store_stream
from itemsheet.housekeeping.leftovers import Removed, remove_leftovers
from itemsheet.housekeeping.retention import clean_up, expires, needs_file
from itemsheet.jobs.importing import JobOptions, begin_attempt, create_refused_job
from itemsheet.jobs.views import JobConflict, removed_reason, reopen_for_retry
from itemsheet.runs import running
from settings import get_settings
from tests.itemsheet.old_jobs import LONG_AGO, add_job, age, error_count, job_row, store_old

PAST_RETENTION = timedelta(days=91)  # the default keeps 90 days
HOURS_AGO = timedelta(hours=2)  # past the default grace of one hour


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    """The row locks that keep a retry from racing the clean-up must hold on both."""
    return str(request.param)


def _write(path: Path, size: int, *, old: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return age(path, HOURS_AGO) if old else path


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_a_job_ended_past_retention_loses_its_row_errors_and_file_but_keeps_its_counts(
    importer_env: Path, status: JobStatus
) -> None:
    file = store_old(b"an old sheet")
    job_id = add_job(file, status, ended_ago=PAST_RETENTION, errors=3)

    report = clean_up(get_settings())

    assert not Path(file.uri).exists()
    assert error_count(job_id) == 0
    job = job_row(job_id)
    assert (job.status, job.created, job.failed, job.total_rows) == (status, 7, 3, 10)
    assert job.files_removed_at is not None
    assert (report.expired.jobs, report.expired.row_errors) == (1, 3)
    assert report.expired.stored == Removed(1, len(b"an old sheet"))


def test_a_job_ended_within_retention_keeps_everything(importer_env: Path) -> None:
    file = store_old(b"a recent sheet")
    job_id = add_job(file, JobStatus.FAILED, ended_ago=timedelta(days=89), errors=2)

    report = clean_up(get_settings())

    assert Path(file.uri).read_bytes() == b"a recent sheet"
    assert error_count(job_id) == 2
    assert job_row(job_id).files_removed_at is None
    assert report.expired.jobs == 0


def test_a_file_shared_with_a_kept_or_active_job_stays_until_its_last_job_expires(
    importer_env: Path,
) -> None:
    file = store_old(b"one file, three jobs")
    old = add_job(file, JobStatus.FAILED, ended_ago=LONG_AGO, errors=2)
    recent = add_job(file, JobStatus.COMPLETED, ended_ago=timedelta(days=10), errors=1)
    active = add_job(file, JobStatus.PROCESSING)

    first = clean_up(get_settings())

    assert Path(file.uri).exists()
    assert first.expired.stored == Removed()
    assert (error_count(old), job_row(old).files_removed_at is not None) == (0, True)
    assert (error_count(recent), job_row(recent).files_removed_at) == (1, None)
    # Months later the active job has long ended too: the last one out removes the file.
    with session_scope() as session:
        job = session.get(ImportJob, active)
        assert job is not None
        job.status, job.finished_at = JobStatus.COMPLETED, utcnow() - LONG_AGO

    later = clean_up(get_settings(), now=utcnow() + timedelta(days=95))

    assert not Path(file.uri).exists()
    assert later.expired.jobs == 2
    assert later.expired.stored == Removed(1, len(b"one file, three jobs"))
    assert error_count(recent) == 0


def test_pending_and_processing_jobs_keep_their_files_errors_and_work_files(
    importer_env: Path,
) -> None:
    settings = get_settings()
    pending_file, processing_file = store_old(b"waiting"), store_old(b"running")
    pending = add_job(pending_file, JobStatus.PENDING)
    processing = add_job(processing_file, JobStatus.PROCESSING, errors=4)
    rows = _write(settings.work_dir / f"{processing}.2.arrow", 10, old=True)
    result = _write(settings.work_dir / f"{processing}.2.result", 10, old=True)

    report = clean_up(get_settings())

    assert Path(pending_file.uri).exists() and Path(processing_file.uri).exists()
    assert rows.exists() and result.exists()
    assert error_count(processing) == 4
    assert job_row(pending).files_removed_at is None
    assert report.removed_bytes == 0


def test_leftovers_of_interrupted_work_are_removed_and_work_in_progress_is_kept(
    importer_env: Path,
) -> None:
    settings = get_settings()
    work, storage = settings.work_dir, Path(settings.resolved_storage_url())
    ended = add_job(store_old(b"ended"), JobStatus.FAILED, ended_ago=timedelta(days=1))
    busy_file = store_old(b"busy")
    busy = add_job(busy_file, JobStatus.PROCESSING)
    sha, unused_sha = "ab" * 32, "cd" * 32
    removed = [
        _write(work / f"{ended}.1.arrow", 100, old=False),  # its job ended: no grace needed
        _write(work / f"{ended}.1.summary", 7, old=False),  # how those rows were read
        _write(work / f"{uuid.uuid4()}.1.arrow", 200, old=True),  # a job no database knows
        _write(work / f"{unused_sha}-{'e' * 16}", 300, old=True),  # a copy nobody reads
        _write(work / f"{ended}.1.result", 10, old=True),
        _write(work / f"{unused_sha}.{'0' * 32}.partial", 20, old=True),
        _write(storage / "ab" / f"{sha}.{'1' * 32}.partial", 30, old=True),
        _write(storage / "ab" / f"{sha}.{'2' * 32}.removing", 40, old=True),
        # A rejected-rows download's folder, left by an API process that was killed.
        age(_write(work / "rejected-1a2b" / "rows.arrow", 50, old=True).parent, HOURS_AGO),
    ]
    kept = [
        _write(work / f"{busy}.3.arrow", 1, old=True),
        _write(work / f"{busy}.3.summary", 1, old=True),
        _write(work / f"{busy}.3.result", 1, old=True),
        _write(work / f"{busy_file.sha256}-{'f' * 16}", 1, old=True),  # the busy job's copy
        _write(work / f"{uuid.uuid4()}.1.arrow", 1, old=False),
        _write(work / "spare-12345-1.out", 1, old=True),  # its owner's to remove
        _write(storage / "ab" / f"{sha}.{'3' * 32}.partial", 1, old=False),  # being written
        _write(work / "rejected-3c4d" / "rows.arrow", 1, old=False).parent,  # being read
        Path(busy_file.uri),
    ]

    report = remove_leftovers(settings)

    assert [p.name for p in removed if p.exists()] == []
    assert [p.name for p in kept if not p.exists()] == []
    assert report.work == Removed(4, 607)
    assert report.unfinished == Removed(5, 150)


def test_a_dry_run_reports_what_a_real_run_removes_and_removes_nothing(
    importer_env: Path,
) -> None:
    settings = get_settings()
    file = store_old(b"to be removed")
    job_id = add_job(file, JobStatus.COMPLETED, ended_ago=PAST_RETENTION, errors=2)
    partial = _write(Path(file.uri).parent / f"{file.sha256}.{'9' * 32}.partial", 50, old=True)
    rows = _write(settings.work_dir / f"{job_id}.1.arrow", 70, old=False)

    dry = clean_up(settings, dry_run=True)

    assert Path(file.uri).exists() and partial.exists() and rows.exists()
    assert (error_count(job_id), job_row(job_id).files_removed_at) == (2, None)
    assert dry.lines()[:2] == ["jobs ended over 90 days ago: 1", "  row errors: would remove 2"]

    real = clean_up(settings)

    assert not Path(file.uri).exists() and not partial.exists() and not rows.exists()
    assert dry.as_dict() == real.as_dict() | {"dry_run": True}
    assert real.removed_bytes == len(b"to be removed") + 50 + 70


def test_retention_of_zero_days_keeps_files_and_errors_but_removes_leftovers(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_RETENTION_DAYS", "0")
    get_settings.cache_clear()
    file = store_old(b"kept for ever")
    job_id = add_job(file, JobStatus.COMPLETED, ended_ago=timedelta(days=3650), errors=1)
    rows = _write(get_settings().work_dir / f"{job_id}.1.arrow", 5, old=False)

    report = clean_up(get_settings())

    assert Path(file.uri).exists() and error_count(job_id) == 1
    assert not rows.exists()
    assert report.lines()[0].startswith("retention is off")


def test_a_job_refused_before_its_file_was_stored_never_removes_the_users_file(
    importer_env: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "catalogue.xlsx"
    mine.write_bytes(b"too big to store")
    age(mine, LONG_AGO)
    with session_scope() as session:
        job = create_refused_job(
            session,
            location=str(mine),
            filename=mine.name,
            size=16,
            source=JobSource.CLI,
            options=JobOptions(),
            reason="the file is larger than the limit of 10 bytes",
        )
        job.finished_at = utcnow() - LONG_AGO
        job_id = job.id

    report = clean_up(get_settings())

    assert mine.read_bytes() == b"too big to store"
    assert job_row(job_id).files_removed_at is not None
    assert report.expired.stored == Removed()


def test_the_same_bytes_uploaded_again_as_the_clean_up_runs_keep_their_file(
    importer_env: Path,
) -> None:
    settings = get_settings()
    file = store_old(b"uploaded again")
    old = add_job(file, JobStatus.COMPLETED, ended_ago=LONG_AGO)
    # The new upload has stored (found) its file; its job is not committed yet.
    store_stream(
        io.BytesIO(b"uploaded again"),
        settings.resolved_storage_url(),
        max_bytes=100,
    )

    report = clean_up(settings)

    assert Path(file.uri).read_bytes() == b"uploaded again"
    assert report.expired.stored == Removed()
    assert job_row(old).files_removed_at is not None


def test_a_retry_of_a_job_whose_file_was_removed_is_refused_with_the_reason(
    importer_env: Path,
) -> None:
    job_id = add_job(store_old(b"gone"), JobStatus.FAILED, ended_ago=PAST_RETENTION)
    clean_up(get_settings())

    with session_scope() as session, pytest.raises(JobConflict) as refused:
        reopen_for_retry(session, job_id)

    reason = str(refused.value)
    assert reason.startswith("this import's file and row errors were removed on ")
    assert reason.endswith("upload the file again to import it")
    assert "\n" not in reason
    assert job_row(job_id).status is JobStatus.FAILED


def test_a_run_of_a_job_whose_file_was_removed_fails_it_with_the_reason(
    importer_env: Path,
) -> None:
    """A retry from the Prefect UI runs the flow without asking the API."""
    job_id = add_job(store_old(b"gone"), JobStatus.FAILED, ended_ago=PAST_RETENTION)
    clean_up(get_settings())
    with session_scope() as session:
        attempt = begin_attempt(session, job_id, flow_run_id=uuid.uuid4())
    assert attempt is not None

    assert running.load(job_id, attempt) is None

    job = job_row(job_id)
    assert job.status is JobStatus.FAILED
    assert job.files_removed_at is not None
    assert job.error == removed_reason(job.files_removed_at)


NOW = utcnow()
CUTOFF = NOW - timedelta(days=90)


@pytest.mark.parametrize(
    ("status", "ended_days_ago", "removed", "expired", "needed"),
    [
        (JobStatus.COMPLETED, 91, False, True, False),
        (JobStatus.FAILED, 91, False, True, False),
        (JobStatus.CANCELLED, 91, False, True, False),
        (JobStatus.COMPLETED, 89, False, False, True),
        (JobStatus.COMPLETED, 91, True, False, False),  # already cleaned
        (JobStatus.PENDING, None, False, False, True),
        (JobStatus.PROCESSING, None, False, False, True),
        (JobStatus.FAILED, None, False, False, True),  # no end recorded: kept
    ],
)
def test_which_jobs_expire_and_which_still_need_their_file(
    status: JobStatus, ended_days_ago: int | None, removed: bool, expired: bool, needed: bool
) -> None:
    job = ImportJob(
        status=status,
        finished_at=None if ended_days_ago is None else NOW - timedelta(days=ended_days_ago),
        files_removed_at=NOW if removed else None,
    )

    assert (expires(job, CUTOFF), needs_file(job, CUTOFF)) == (expired, needed)
