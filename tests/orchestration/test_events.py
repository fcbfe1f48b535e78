"""Every committed job transition is told once, by the one mapping of status to event."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from db.models import JobSource, JobStatus, utcnow
from db.session import session_scope
from itemsheet.claims import claim, facts
from itemsheet.dispatching import note_waiting, request_run
from itemsheet.importing import JobOptions, begin_attempt, create_refused_job, finish_job
from itemsheet.jobs import job_view, request_cancel
from itemsheet.recovery import Policy
from orchestration.events import EVENT_OF, JobEvent, JobEvents, job_event
from tests.api.helpers import add_job, read_job

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://imports.example.com"


@pytest.fixture
def told(importer_env: Path) -> Iterator[list[JobEvent]]:
    """The events this process sends, in order (the listener with a list for Prefect)."""
    sent: list[JobEvent] = []
    listener = JobEvents(sent.append)
    listener.attach()
    try:
        yield sent
    finally:
        listener.detach()


def names(events: list[JobEvent]) -> list[str]:
    return [e.event for e in events]


def test_every_status_but_pending_has_an_event() -> None:
    # A new status (review, undo) must say how it is told: one line in EVENT_OF.
    assert set(EVENT_OF) == set(JobStatus) - {JobStatus.PENDING}
    assert all(name.startswith("importer.import.") for name in EVENT_OF.values())


def test_the_event_names_the_job_its_file_source_and_run_and_carries_its_counts(
    importer_env: Path,
) -> None:
    run = uuid.uuid4()
    job_id = add_job(
        status=JobStatus.COMPLETED,
        flow_run_id=run,
        total_rows=10,
        processed_rows=10,
        created=7,
        updated=2,
        unchanged=1,
        started_at=utcnow() - timedelta(seconds=2),
        finished_at=utcnow(),
    )
    told = job_event(job_view(read_job(job_id)), base_url=BASE)
    assert told is not None
    assert told.event == "importer.import.completed"
    assert told.resource["prefect.resource.id"] == f"importer.job.{job_id}"
    assert told.resource["prefect.resource.name"] == "items.xlsx"
    assert told.resource["importer.source"] == "upload"
    roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in told.related}
    assert roles == {
        "source": "importer.source.upload",
        "file": f"importer.file.{'ab' * 32}",
        "flow-run": f"prefect.flow-run.{run}",
    }
    payload = told.payload
    assert (payload.total_rows, payload.created, payload.updated, payload.unchanged) == (
        10,
        7,
        2,
        1,
    )
    assert payload.elapsed_s is not None and payload.elapsed_s >= 2
    assert payload.rows_per_s > 0
    assert payload.job_url == f"{BASE}/api/excel/import/{job_id}/progress"
    assert payload.page_url == f"{BASE}/?job={job_id}"


def test_a_pending_job_is_not_told(importer_env: Path) -> None:
    assert job_event(job_view(read_job(add_job())), base_url=BASE) is None


def test_a_run_starting_and_completing_a_job_tells_each_once(told: list[JobEvent]) -> None:
    job_id = add_job()
    run = uuid.uuid4()
    with session_scope() as session:
        begin_attempt(session, job_id, flow_run_id=run)
    with session_scope() as session:  # a resume: still processing, nothing new to tell
        begin_attempt(session, job_id, flow_run_id=run)
    with session_scope() as session:
        finish_job(session, job_id, JobStatus.COMPLETED)
    with session_scope() as session:  # a late hook: the job had ended already
        finish_job(session, job_id, JobStatus.COMPLETED)
    assert names(told) == ["importer.import.started", "importer.import.completed"]
    assert told[-1].payload.flow_run_id == run


def test_a_cancel_through_the_api_of_a_waiting_job_is_told(told: list[JobEvent]) -> None:
    job_id = add_job()
    with session_scope() as session:
        request_cancel(session, job_id)
    assert names(told) == ["importer.import.cancelled"]
    assert told[0].payload.error == "the import was cancelled before it started"


def test_a_cancel_of_a_running_job_is_told_by_the_run_that_ends_it(
    told: list[JobEvent],
) -> None:
    job_id = add_job(status=JobStatus.PROCESSING, attempt=1)
    told.clear()  # inserting a running job is a transition too; a test's set-up is not
    with session_scope() as session:
        request_cancel(session, job_id)  # only asks: the run stops after its batch
    assert told == []
    with session_scope() as session:
        finish_job(session, job_id, JobStatus.CANCELLED, reason="cancelled")
    assert names(told) == ["importer.import.cancelled"]


def test_a_dispatch_time_out_is_told_as_failed(told: list[JobEvent]) -> None:
    job_id = add_job()
    with session_scope() as session:
        job = session.get_one(type(read_job(job_id)), job_id)
        request_run(job)
        job.run_requested_at = utcnow() - timedelta(hours=1)
        key = job.run_key
    assert key is not None
    with session_scope() as session:
        note_waiting(session, job_id, run_key=key, reason="away", give_up_before=utcnow())
    assert names(told) == ["importer.import.failed"]
    assert "could not be started" in (told[0].payload.error or "")


def test_a_refused_file_is_told_once_as_failed(told: list[JobEvent]) -> None:
    with session_scope() as session:
        create_refused_job(
            session,
            location="/feeds/missing.xlsx",
            filename="missing.xlsx",
            size=0,
            source=JobSource.SCHEDULE,
            options=JobOptions(),
            reason="the source '/feeds/missing.xlsx' does not exist",
        )
    assert names(told) == ["importer.import.failed"]
    assert told[0].resource["importer.source"] == "schedule"
    # Nothing was stored, so no file is named; the job itself still carries the name.
    assert {r["prefect.resource.role"] for r in told[0].related} == {"source"}
    assert told[0].resource["prefect.resource.name"] == "missing.xlsx"


def test_the_reconciler_ending_a_job_is_told(told: list[JobEvent]) -> None:
    job_id = add_job(status=JobStatus.PROCESSING, attempt=3, resumes=2, heartbeat_at=None)
    told.clear()
    policy = Policy(stale_after_s=60, max_attempts=3)
    with session_scope() as session:
        seen = facts(read_job(job_id))
        action = claim(session, seen, run=None, now=utcnow(), policy=policy)
    assert action is not None and action.act.value == "failed"
    assert names(told) == ["importer.import.failed"]
    assert "interrupted 3 time(s)" in (told[0].payload.error or "")


def test_a_transition_rolled_back_is_not_told(told: list[JobEvent]) -> None:
    job_id = add_job()
    with pytest.raises(RuntimeError), session_scope() as session:
        finish_job(session, job_id, JobStatus.FAILED, reason="nope")
        session.flush()
        raise RuntimeError("the transaction fails after the change")
    assert told == []
    assert read_job(job_id).status is JobStatus.PENDING


def test_a_sender_that_fails_never_fails_the_transition(importer_env: Path) -> None:
    def broken(_event: JobEvent) -> None:
        raise ConnectionError("Prefect is away")

    listener = JobEvents(broken)
    listener.attach()
    try:
        job_id = add_job()
        with session_scope() as session:
            finish_job(session, job_id, JobStatus.FAILED, reason="bad file")
    finally:
        listener.detach()
    assert read_job(job_id).status is JobStatus.FAILED


def _bulk_status_updates(path: Path) -> list[str]:
    """`update(ImportJob)...values(status=...)` calls in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "values" or "update(ImportJob)" not in ast.unparse(node.func):
            continue
        if any(k.arg == "status" for k in node.keywords):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_the_code_check_finds_a_bulk_status_update(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "session.execute(update(ImportJob).where(ImportJob.id == j).values(status='failed'))\n"
        "session.execute(update(ImportJob).values(heartbeat_at=None))\n"
    )
    assert _bulk_status_updates(sneaky) == ["sneaky.py:1"]


def test_no_bulk_update_changes_a_status_behind_the_listener() -> None:
    modules = [
        p
        for folder in ("api", "cli", "db", "deployments", "flows", "itemsheet", "orchestration")
        for p in (ROOT / folder).rglob("*.py")
        if "migrations" not in p.parts
    ]
    assert modules
    assert [hit for p in modules for hit in _bulk_status_updates(p)] == []


def test_two_listeners_each_tell_every_transition(told: list[JobEvent]) -> None:
    other: list[JobEvent] = []
    second = JobEvents(other.append)
    second.attach()
    try:
        job_id = add_job()
        with session_scope() as session:
            finish_job(session, job_id, JobStatus.FAILED, reason="bad file")
    finally:
        second.detach()
    assert names(told) == names(other) == ["importer.import.failed"]
