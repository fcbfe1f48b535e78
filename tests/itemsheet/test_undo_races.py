"""An undo and a review's answer, in every order, on SQLite and PostgreSQL: an import is
undone only once it has ended, is never confirmed while its undo is under way, and never
says `undone` while its items stay."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import db.session
from db.models import ImportJob, Item, JobSource, JobStatus, OnError
from db.repository import get_job
from db.session import session_scope
from itemsheet.jobs.importing import StaleAttempt, apply_batch, begin_attempt, finish_job
from itemsheet.jobs.review import (
    ReviewAnswer,
    ReviewConflict,
    accept,
    await_answer,
    end_preview,
    reset_progress,
)
from itemsheet.jobs.undoing import UndoRefused, create_undo_job, finish_undo
from tests.itemsheet.test_undoing import A, rows, run_undo

CONFIRM = ReviewAnswer(confirm=True)
NEW_PREVIEW = ReviewAnswer(confirm=False, preview_only=True, mapping={"SKU": "sku"})
REJECT = ReviewAnswer(confirm=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def previewed(batches: list[list[dict[str, Any]]]) -> uuid.UUID:
    """An import with review whose preview pass ran (writing nothing) and now waits."""
    with session_scope() as session:
        job = ImportJob(
            source=JobSource.UPLOAD,
            filename="items.csv",
            file_sha256="ab" * 32,
            file_size=1,
            file_uri="memory://ab",
            batch_size=100,
            columns=["sku", "name", "price"],
            warnings=[],
            review=True,
            previewing=True,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    with session_scope() as session:
        attempt = begin_attempt(session, job_id, flow_run_id=None)
    assert attempt is not None
    write(job_id, attempt, batches)
    with session_scope() as session:
        assert end_preview(session, job_id) is None
        assert await_answer(session, job_id) is not None
    return job_id


def write(job_id: uuid.UUID, attempt: int, batches: list[list[dict[str, Any]]]) -> None:
    for number, batch in enumerate(batches, start=1):
        with session_scope() as session:
            apply_batch(session, job_id, attempt=attempt, batch_no=number, rows=rows(batch))


def answer(job_id: uuid.UUID, given: ReviewAnswer = CONFIRM) -> bool:
    with session_scope() as session:
        job = get_job(session, job_id)
        assert job is not None
        return accept(session, job_id, round_=job.review_round, answer=given)


def undo(job_id: uuid.UUID) -> uuid.UUID:
    with session_scope() as session:
        return create_undo_job(session, job_id, force=False, undo_days=30).id


def status(job_id: uuid.UUID) -> JobStatus:
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        return job.status


def undos_of(job_id: uuid.UUID) -> list[ImportJob]:
    with session_scope(write=False) as session:
        return list(session.scalars(select(ImportJob).where(ImportJob.undo_of == job_id)))


def skus() -> list[str]:
    with session_scope(write=False) as session:
        return sorted(session.scalars(select(Item.sku)))


def legacy_undo(import_id: uuid.UUID, undo_status: JobStatus) -> uuid.UUID:
    """An undo job of an import that was not allowed one, as rows written before the
    rule could hold (an undo asked while the import awaited its review)."""
    with session_scope() as session:
        job = ImportJob(
            status=undo_status,
            source=JobSource.UNDO,
            filename="undo of items.csv",
            file_sha256="",
            file_size=0,
            file_uri="",
            on_error=OnError.SKIP,
            batch_size=100,
            warnings=[],
            columns=[],
            undo_of=import_id,
            attempt=1 if undo_status is JobStatus.PROCESSING else 0,
        )
        session.add(job)
        session.flush()
        return job.id


def test_an_undo_asked_while_the_import_awaits_review_is_refused_and_the_confirm_writes(
    importer_env: Path,
) -> None:
    job_id = previewed([A[:3], A[3:]])
    with pytest.raises(UndoRefused, match="waits for its review") as refused:
        undo(job_id)
    assert "\n" not in str(refused.value)
    assert undos_of(job_id) == []
    assert answer(job_id)  # undo, then confirm: the confirm is not refused
    with session_scope() as session:
        attempt = begin_attempt(session, job_id, flow_run_id=None)
    assert attempt is not None
    write(job_id, attempt, [A[:3], A[3:]])
    with session_scope() as session:
        finish_job(session, job_id, JobStatus.COMPLETED)
    assert status(job_id) is JobStatus.COMPLETED and len(skus()) == 6


def test_a_confirmed_import_is_undone_only_once_it_has_ended(importer_env: Path) -> None:
    job_id = previewed([A[:3], A[3:]])
    assert answer(job_id)
    with pytest.raises(UndoRefused, match="still running"):
        undo(job_id)  # pending: confirmed, its run not begun
    with session_scope() as session:
        attempt = begin_attempt(session, job_id, flow_run_id=None)
    assert attempt is not None
    write(job_id, attempt, [A[:3]])
    with pytest.raises(UndoRefused, match="still running"):
        undo(job_id)  # processing, one batch written
    write(job_id, attempt, [A[:3], A[3:]])
    with session_scope() as session:
        finish_job(session, job_id, JobStatus.COMPLETED)
    assert undos_of(job_id) == []
    done = run_undo(job_id)
    assert (done.status, done.deleted) == (JobStatus.COMPLETED, 6)
    assert status(job_id) is JobStatus.UNDONE and skus() == []


@pytest.mark.parametrize(
    ("import_status", "reason"),
    [
        (JobStatus.PENDING, "still running"),
        (JobStatus.PROCESSING, "still running"),
        (JobStatus.AWAITING_REVIEW, "reject it instead"),
    ],
)
def test_an_import_that_may_still_write_cannot_be_undone(
    importer_env: Path, import_status: JobStatus, reason: str
) -> None:
    job_id = previewed([A])
    with session_scope() as session:
        job = get_job(session, job_id)
        assert job is not None
        job.status = import_status
    with pytest.raises(UndoRefused, match=reason):
        undo(job_id)
    assert undos_of(job_id) == [] and status(job_id) is import_status


@pytest.mark.parametrize("undo_status", [JobStatus.PENDING, JobStatus.PROCESSING])
def test_an_import_is_not_confirmed_nor_previewed_again_while_its_undo_is_under_way(
    importer_env: Path, undo_status: JobStatus
) -> None:
    job_id = previewed([A])
    undo_id = legacy_undo(job_id, undo_status)
    for given in (CONFIRM, NEW_PREVIEW):
        with pytest.raises(ReviewConflict, match=f"undo of this import is under way .*{undo_id}"):
            answer(job_id, given)
    assert status(job_id) is JobStatus.AWAITING_REVIEW
    assert answer(job_id, REJECT)  # a rejection writes nothing: it may always be given
    assert status(job_id) is JobStatus.CANCELLED


@pytest.mark.parametrize(
    "import_status", [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.AWAITING_REVIEW]
)
def test_an_undo_ending_leaves_an_import_that_may_still_write_as_it_is(
    importer_env: Path, import_status: JobStatus
) -> None:
    job_id = previewed([A])
    with session_scope() as session:
        job = get_job(session, job_id)
        assert job is not None
        job.status = import_status
    undo_id = legacy_undo(job_id, JobStatus.PROCESSING)
    with session_scope() as session:
        finish_undo(session, undo_id)
    assert status(job_id) is import_status
    with session_scope(write=False) as session:
        done = get_job(session, undo_id)
        assert done is not None
        assert done.status is JobStatus.COMPLETED
        assert any("not marked undone" in w for w in done.warnings), done.warnings


def test_an_import_confirmed_under_an_old_undo_keeps_its_items_and_can_be_undone_after(
    importer_env: Path,
) -> None:
    """The old failure: undo, then confirm; the import wrote batch 1, the undo ended and
    marked it `undone`, its next batch was refused as stale, its items stayed and a real
    undo was refused. Now the import goes on and a real undo removes its items."""
    job_id = previewed([A[:3], A[3:]])
    undo_id = legacy_undo(job_id, JobStatus.PENDING)
    with session_scope() as session:  # the confirm from before the rule
        job = get_job(session, job_id)
        assert job is not None
        job.status, job.previewing = JobStatus.PENDING, False
        reset_progress(session, job)
    with session_scope() as session:
        attempt = begin_attempt(session, job_id, flow_run_id=None)
    assert attempt is not None
    write(job_id, attempt, [A[:3]])
    with session_scope() as session:  # the undo had nothing to undo yet, and ends
        begin_attempt(session, undo_id, flow_run_id=None)
    with session_scope() as session:
        finish_undo(session, undo_id)
    assert status(job_id) is JobStatus.PROCESSING
    try:
        write(job_id, attempt, [A[:3], A[3:]])
    except StaleAttempt:
        pytest.fail("the import's next batch was refused: its undo marked it undone")
    with session_scope() as session:
        finish_job(session, job_id, JobStatus.COMPLETED)
    assert status(job_id) is JobStatus.COMPLETED and len(skus()) == 6
    assert run_undo(job_id).deleted == 6
    assert status(job_id) is JobStatus.UNDONE and skus() == []


def try_undo(session: Session, job_id: uuid.UUID) -> bool:
    try:
        create_undo_job(session, job_id, force=False, undo_days=30)
    except UndoRefused:
        return False
    return True


def try_confirm(session: Session, job_id: uuid.UUID) -> bool:
    try:
        return accept(session, job_id, round_=0, answer=CONFIRM)
    except ReviewConflict:
        return False


@pytest.mark.parametrize("first", [try_undo, try_confirm], ids=["undo-first", "confirm-first"])
def test_of_an_undo_and_a_confirm_racing_for_one_import_only_one_passes(
    importer_env: Path,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    first: Callable[[Session, uuid.UUID], bool],
) -> None:
    """The first holds its transaction open: the second cannot read the import until it
    ends (both lock its row; SQLite's write lock does the same), then decides on what the
    first left."""
    second = try_confirm if first is try_undo else try_undo
    monkeypatch.setattr(db.session, "SQLITE_BUSY_TIMEOUT_MS", 200)
    job_id = previewed([A])
    holding = session_scope()
    session = holding.__enter__()
    passed = [first(session, job_id)]
    session.flush()
    with (
        pytest.raises((OperationalError, sqlite3.OperationalError), match="lock"),
        session_scope() as racing,
    ):
        if database == "postgresql":
            racing.execute(text("SET LOCAL lock_timeout = '200ms'"))
        second(racing, job_id)
    holding.__exit__(None, None, None)
    with session_scope() as session:
        passed.append(second(session, job_id))
    assert passed == [first is try_confirm, first is try_undo]
    assert undos_of(job_id) == [] and status(job_id) is JobStatus.PENDING
