"""A job changes status in one place: `move`, which checks, stamps and notes the event."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from db.models import ImportJob, JobStatus, utcnow
from db.session import session_scope
from itemsheet.jobs.importing import begin_attempt, finish_job
from itemsheet.jobs.transitions import TransitionRefused, move, moved
from orchestration.events import JobEvent, JobEvents
from tests.api.helpers import add_job, read_job

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("api", "cli", "db", "deployments", "flows", "itemsheet", "orchestration")


@pytest.fixture
def told(importer_env: Path) -> Iterator[list[JobEvent]]:
    """The events sent in this test, in order."""
    sent: list[JobEvent] = []
    listener = JobEvents(sent.append)
    listener.attach()
    try:
        yield sent
    finally:
        listener.detach()


def _move(job_id: uuid.UUID, to: JobStatus, **kw: object) -> ImportJob:
    with session_scope() as session:
        job = session.get_one(ImportJob, job_id)
        move(session, job, to, **kw)  # type: ignore[arg-type]
        return job


def test_an_ended_job_stays_ended_but_for_a_retry_or_an_undo() -> None:
    assert JobStatus.FAILED.can_become(JobStatus.PENDING)
    assert JobStatus.CANCELLED.can_become(JobStatus.PENDING)
    assert JobStatus.COMPLETED.can_become(JobStatus.UNDONE)
    assert not JobStatus.COMPLETED.can_become(JobStatus.FAILED)
    assert not JobStatus.COMPLETED.can_become(JobStatus.PENDING)
    assert not JobStatus.PENDING.can_become(JobStatus.UNDONE)  # nothing was written yet
    assert [s for s in JobStatus if JobStatus.UNDONE.can_become(s)] == [JobStatus.UNDONE]
    for status in JobStatus.active():  # a running or waiting job may end in any way
        assert JobStatus.terminal() - {JobStatus.UNDONE} <= {
            s for s in JobStatus if status.can_become(s)
        }


def test_the_sets_of_statuses_say_what_callers_mean() -> None:
    assert JobStatus.terminal() | JobStatus.active() == set(JobStatus)
    assert not JobStatus.terminal() & JobStatus.active()
    assert JobStatus.under_way() | JobStatus.unstarted() == JobStatus.active()
    assert JobStatus.undoable() == JobStatus.terminal() - {JobStatus.UNDONE}
    assert JobStatus.retryable() < JobStatus.undoable()
    assert all(s.is_terminal == (s in JobStatus.terminal()) for s in JobStatus)


def test_a_forbidden_transition_is_refused_and_changes_nothing(told: list[JobEvent]) -> None:
    job_id = add_job(status=JobStatus.COMPLETED, finished_at=utcnow())
    with pytest.raises(TransitionRefused, match="from completed to failed"):
        _move(job_id, JobStatus.FAILED, reason="late")
    job = read_job(job_id)
    assert (job.status, job.error) == (JobStatus.COMPLETED, None)
    assert told == []


def test_a_job_already_there_is_not_moved_again(told: list[JobEvent]) -> None:
    job_id = add_job(status=JobStatus.FAILED, error="first reason")
    with session_scope() as session:
        job = session.get_one(ImportJob, job_id)
        assert move(session, job, JobStatus.FAILED, reason="second") is False
        assert moved(session) == []
    assert read_job(job_id).error == "first reason"
    assert told == []


def test_starting_stamps_the_start_once_and_ending_stamps_the_end(importer_env: Path) -> None:
    job_id = add_job()
    start = utcnow() - timedelta(minutes=5)
    job = _move(job_id, JobStatus.PROCESSING, now=start)
    assert (job.started_at, job.finished_at) == (start, None)
    end = start + timedelta(minutes=1)
    job = _move(job_id, JobStatus.FAILED, reason="x" * 5000, now=end)
    assert job.finished_at == end
    assert job.error is not None and len(job.error) < 5000  # clipped for the page
    # A retry: pending again, no end and no error; a new start keeps the first one.
    job = _move(job_id, JobStatus.PENDING)
    assert (job.finished_at, job.error) == (None, None)
    job = _move(job_id, JobStatus.PROCESSING)
    assert job.started_at == start


def test_a_wait_for_review_is_stamped_and_ended_by_the_answer(importer_env: Path) -> None:
    job_id = add_job(status=JobStatus.PROCESSING, heartbeat_at=utcnow())
    ready = utcnow()
    job = _move(job_id, JobStatus.AWAITING_REVIEW, now=ready)
    assert (job.review_ready_at, job.heartbeat_at) == (ready, None)
    job = _move(job_id, JobStatus.CANCELLED, reason="rejected")
    assert (job.review_ready_at, job.error) == (None, "rejected")
    assert job.finished_at is not None


def test_an_undone_import_keeps_its_end_and_its_reason(importer_env: Path) -> None:
    ended = utcnow() - timedelta(days=1)
    job_id = add_job(status=JobStatus.FAILED, finished_at=ended, error="row 7 is bad")
    job = _move(job_id, JobStatus.UNDONE)
    assert (job.status, job.finished_at, job.error) == (JobStatus.UNDONE, ended, "row 7 is bad")


def test_the_event_is_sent_after_the_commit_only(told: list[JobEvent]) -> None:
    job_id = add_job()
    with session_scope() as session:
        job = session.get_one(ImportJob, job_id)
        move(session, job, JobStatus.PROCESSING)
        assert moved(session) == [job]
        session.flush()
        job.processed_rows = 40  # after the move, in the same transaction
        assert told == []  # flushed, not committed: nothing is told yet
    assert [e.event for e in told] == ["importer.import.started"]
    assert told[0].payload.processed_rows == 40  # the job as the transaction left it


def test_a_move_rolled_back_sends_nothing_and_is_forgotten(told: list[JobEvent]) -> None:
    job_id = add_job()
    with session_scope() as session:
        job = session.get_one(ImportJob, job_id)
        move(session, job, JobStatus.CANCELLED, reason="changed my mind")
        session.flush()
        session.rollback()
        assert moved(session) == []
        job = session.get_one(ImportJob, job_id)
        job.processed_rows = 1  # a later commit in the same session tells nothing
    assert told == []
    assert read_job(job_id).status is JobStatus.PENDING


def _status_writes(path: Path) -> list[str]:
    """`x.status = ...` and `ImportJob(status=<anything but PENDING>)` in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Attribute) and t.attr == "status" for t in targets):
            found.append(f"{path}:{node.lineno}")
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "ImportJob":
            given = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if given.get("status", "JobStatus.PENDING") != "JobStatus.PENDING":
                found.append(f"{path}:{node.lineno}")
    return found


def test_the_code_check_finds_a_status_written_by_hand(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "job.status = JobStatus.FAILED\n"
        "ImportJob(status=JobStatus.COMPLETED)\n"
        "ImportJob(status=JobStatus.PENDING)\n"
        "job.status_text = 'x'\n"
    )
    assert _status_writes(sneaky) == [f"{sneaky}:1", f"{sneaky}:2"]


def test_nothing_but_move_changes_a_status() -> None:
    """New jobs begin `pending`; every later status is `move`'s to set."""
    modules = [
        p
        for folder in PRODUCT
        for p in (ROOT / folder).rglob("*.py")
        if "migrations" not in p.parts and p != ROOT / "itemsheet" / "jobs" / "transitions.py"
    ]
    assert len(modules) > 50
    assert [hit for p in modules for hit in _status_writes(p)] == []


def test_a_late_run_of_an_undone_import_begins_nothing(told: list[JobEvent]) -> None:
    job_id = add_job(status=JobStatus.UNDONE, finished_at=utcnow(), attempt=1)
    with session_scope() as session:
        assert begin_attempt(session, job_id, flow_run_id=uuid.uuid4()) is None
    with session_scope() as session:  # nor may its late hook end it again
        finish_job(session, job_id, JobStatus.FAILED, reason="crashed")
    assert (read_job(job_id).status, told) == (JobStatus.UNDONE, [])


def test_a_reviewed_import_is_timed_by_its_work_not_by_the_wait_for_its_answer(
    importer_env: Path,
) -> None:
    """9,713 rows previewed in 2 s, answered a minute later, the run the answer started
    begins 3 s after that and writes them in half a second: the card says 3.5 s of work,
    the write's own rate, and no second attempt."""
    from itemsheet.jobs.views import job_view

    t0 = utcnow() - timedelta(hours=1)
    job_id = add_job(status=JobStatus.PENDING, total_rows=9713)
    _move(job_id, JobStatus.PROCESSING, now=t0)
    _move(job_id, JobStatus.AWAITING_REVIEW, now=t0 + timedelta(seconds=2))
    _move(job_id, JobStatus.PENDING, now=t0 + timedelta(seconds=62))  # confirmed
    _move(job_id, JobStatus.PROCESSING, now=t0 + timedelta(seconds=65))
    with session_scope() as session:
        job = session.get_one(ImportJob, job_id)
        job.attempt = 2  # each run is an attempt of its own (the fence of its batches)
        job.writing_since = t0 + timedelta(seconds=66)
        job.processed_rows = 9713
        move(session, job, JobStatus.COMPLETED, now=t0 + timedelta(seconds=66.5))
        shown = job_view(job)

    assert shown.elapsed_s == pytest.approx(2 + 1.5)
    assert shown.waited_s == pytest.approx(63)
    assert shown.rows_per_s == pytest.approx(9713 / 0.5)
    assert (shown.attempt, shown.retries) == (2, 0)


def test_a_resume_after_a_crash_is_a_retry_and_the_clock_runs_through_it(
    importer_env: Path,
) -> None:
    from itemsheet.jobs.views import job_view

    t0 = utcnow() - timedelta(hours=1)
    job_id = add_job(status=JobStatus.PENDING, total_rows=100)
    _move(job_id, JobStatus.PROCESSING, now=t0)
    with session_scope() as session:
        job = session.get_one(ImportJob, job_id)
        job.attempt = 2  # resumed by a second run while it stayed processing
        move(session, job, JobStatus.COMPLETED, now=t0 + timedelta(seconds=30))
        shown = job_view(job)

    assert (shown.elapsed_s, shown.waited_s, shown.retries) == (30.0, 0.0, 1)
