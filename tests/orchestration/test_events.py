"""Every committed job transition is told once, by the one mapping of status to event."""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from db.models import JobSource, JobStatus, utcnow
from db.session import session_scope
from itemsheet.jobs.claims import claim, facts
from itemsheet.jobs.dispatching import note_waiting, request_run
from itemsheet.jobs.importing import JobOptions, begin_attempt, create_refused_job, finish_job
from itemsheet.jobs.recovery import Policy
from itemsheet.jobs.undoing import apply_undo_batch, create_undo_job, plan_undo
from itemsheet.jobs.views import job_view, request_cancel
from itemsheet.runs.undo_running import complete
from orchestration import events
from orchestration import names as flow_names
from orchestration.events import EVENT_OF, JobEvent, JobEvents, job_event
from tests.api.helpers import add_job, read_job
from tests.itemsheet.test_undoing import A, run_import

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


@contextmanager
def queued_for_prefect(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(event, resource) of each event handed to Prefect's `emit_event` (which queues it
    for its events client) in the block, with a Prefect server configured."""
    found: list[tuple[str, str]] = []

    def emit(*, event: str, resource: dict[str, str], **_: object) -> None:
        found.append((event, resource["prefect.resource.id"]))

    monkeypatch.setattr(events, "emit_event", emit)
    with temporary_settings({PREFECT_API_URL: "http://prefect.invalid/api"}):
        yield found


def test_an_undo_completing_is_told_to_prefect_with_nothing_installed_by_hand(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The undo flow never installed the listener, so Prefect never heard that an import
    was undone: a process running an undo loads what the flow's module loads, and that
    must be enough."""
    import flows.undo_import  # noqa: F401 (what a worker loads to run an undo)

    import_id = run_import([A[:2], A[2:4]])
    with queued_for_prefect(monkeypatch) as told:
        with session_scope() as session:
            undo_id = create_undo_job(session, import_id, force=False, undo_days=30).id
        with session_scope() as session:
            attempt = begin_attempt(session, undo_id, flow_run_id=None)
            batches = plan_undo(session, undo_id)
        assert attempt is not None and batches == 2
        for number in (1, 2):
            with session_scope() as session:
                apply_undo_batch(session, undo_id, attempt=attempt, batch_no=number)
        assert complete(undo_id).status is JobStatus.COMPLETED  # the flow's last step
    assert [e for e, r in told if r == f"importer.job.{import_id}"] == ["importer.import.undone"]
    assert [e for e, r in told if r == f"importer.job.{undo_id}"] == [
        "importer.import.started",
        "importer.import.completed",
    ]


def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _loads(module: str) -> set[str]:
    """The project modules a process that imports `module` may load: what it imports, at
    its top or inside a function (the CLI imports lazily), and so on."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                todo += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return seen


def _entry_points() -> list[str]:
    """The modules a process starts from: every flow a deployment runs (`prefect.yaml`,
    `importer worker`), the API, the CLI and `importer worker` itself. (`prefect worker
    start --type importer` runs `deployments.worker`, which changes no job's status.)"""
    deployed = re.findall(r"entrypoint:\s*([\w/]+)\.py:", (ROOT / "prefect.yaml").read_text())
    served = [*flow_names.FLOW_MODULES, flow_names.CLEAN_UP_ENTRYPOINT.rpartition(".")[0]]
    flows = {p.replace("/", ".") for p in deployed} | set(served)
    return [*sorted(flows), "api.main", "cli.main", "deployments.serve"]


def test_the_entry_point_check_reads_imports_and_status_changes() -> None:
    assert "orchestration.events" in _loads("flows.undo_import")
    assert "itemsheet.jobs.transitions" in _loads("itemsheet.jobs.undoing")
    assert {"flows.undo_import", "flows.clean_up", "api.main"} <= set(_entry_points())


def test_every_process_that_can_change_a_job_loads_the_listener() -> None:
    """The listener starts with the import of `orchestration.events`, so no entry point
    calls anything for it; but each one whose code can move a job (it loads the one module
    that does, `itemsheet.jobs.transitions`) must load it."""
    forgot = [
        entry
        for entry in _entry_points()
        if "orchestration.events" not in (loaded := _loads(entry))
        and "itemsheet.jobs.transitions" in loaded
    ]
    assert forgot == []
