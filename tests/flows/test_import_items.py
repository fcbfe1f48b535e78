"""The import-items flow under a real (temporary) Prefect server and the embedded database."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

import itemsheet.runs.running as running_module
from db.models import ImportJob, Item, JobSource, JobStatus, OnError
from db.repository import get_job, list_row_errors
from db.session import session_scope
from flows.import_items import import_items
from itemsheet.jobs.importing import JobOptions
from itemsheet.jobs.uploads import job_for_path
from tests.contract.workbooks import write_csv, write_xlsx

pytestmark = pytest.mark.usefixtures("prefect_server", "importer_env")

HEADER = ["SKU", "Name", "Price", "Qty"]


def catalogue(n: int, *, start: int = 0, price: float = 1.5) -> list[list[Any]]:
    """A header and `n` item rows with predictable values."""
    return [HEADER] + [[f"SKU-{i:05d}", f"Item {i}", price + i, i] for i in range(start, start + n)]


def queue_job(path: Path, **options: Any) -> uuid.UUID:
    """Store `path` and create a pending job for it, as the CLI and API do."""
    with session_scope() as session:
        return job_for_path(session, path, source=JobSource.CLI, options=JobOptions(**options)).id


def run_job(job_id: uuid.UUID) -> ImportJob:
    import_items(job_id=str(job_id), return_state=True)
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        return job


def stored_items() -> dict[str, tuple[Any, ...]]:
    with session_scope(write=False) as session:
        rows = session.execute(
            select(Item.sku, Item.name, Item.description, Item.price, Item.quantity)
        ).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def counts(job: ImportJob) -> dict[str, Any]:
    fields = ("status", "total_rows", "processed_rows", "created", "updated", "unchanged", "failed")
    return {f: getattr(job, f) for f in fields}


def test_import_writes_every_row_in_batches_and_reports_progress(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "items.xlsx", catalogue(23))
    job = run_job(queue_job(path, batch_size=5))
    assert counts(job) == {
        "status": JobStatus.COMPLETED,
        "total_rows": 23,
        "processed_rows": 23,
        "created": 23,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
    }
    assert job.last_batch == 5
    assert job.error is None and job.finished_at is not None
    items = stored_items()
    assert len(items) == 23
    assert items["SKU-00007"] == ("Item 7", None, Decimal("8.5000"), 7)


def test_flow_run_is_named_after_the_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "spring catalogue.csv", catalogue(2))
    job = run_job(queue_job(path))
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(job.flow_run_id)
    assert run.name == "import spring catalogue.csv"


def _crash_after(monkeypatch: pytest.MonkeyPatch, batches_done: int) -> None:
    """Make the writer fail inside the transaction of batch `batches_done + 1` (of the
    pass that writes, after the guardrails' pass)."""
    real = running_module.apply_batch

    def crashing(session: Any, job_id: uuid.UUID, **kwargs: Any) -> Any:
        job = get_job(session, job_id)
        writing = job is not None and not job.previewing
        outcome = real(session, job_id, **kwargs)
        if writing and kwargs["batch_no"] == batches_done + 1:
            raise RuntimeError("simulated worker crash while writing")
        return outcome

    monkeypatch.setattr(running_module, "apply_batch", crashing)


def _seed_and_import(
    tmp_path: Path, *, crash_after: int | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[ImportJob, dict[str, Any]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    seed = write_xlsx(tmp_path / "seed.xlsx", catalogue(20))
    assert run_job(queue_job(seed)).status == JobStatus.COMPLETED
    # 10 unchanged (0-9), 10 updated (10-19: prices up by 23-41 %, within the
    # guardrails), 15 created (20-34), 2 invalid.
    rows = catalogue(10) + catalogue(25, start=10, price=6.25)[1:]
    rows += [["SKU-BAD", "Bad price", "abc", 1], ["SKU-00003", "Duplicate", 1, 1]]
    path = write_xlsx(tmp_path / "update.xlsx", rows)
    job_id = queue_job(path, batch_size=4)
    if crash_after is not None:
        with monkeypatch.context() as patch:
            _crash_after(patch, crash_after)
            interrupted = run_job(job_id)
        assert interrupted.status == JobStatus.FAILED
        assert "simulated worker crash" in (interrupted.error or "")
        assert interrupted.last_batch == crash_after
        assert interrupted.processed_rows == crash_after * 4
    return run_job(job_id), stored_items()


def test_interrupted_import_resumes_after_last_batch_with_the_uninterrupted_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, switch_database: Any
) -> None:
    resumed, resumed_items = _seed_and_import(
        tmp_path / "a", crash_after=3, monkeypatch=monkeypatch
    )
    with session_scope(write=False) as session:
        errors = list_row_errors(session, resumed.id)
    assert [e["row"] for e in errors] == [37, 38]
    switch_database(tmp_path / "b" / "var")
    baseline, baseline_items = _seed_and_import(
        tmp_path / "b", crash_after=None, monkeypatch=monkeypatch
    )
    assert (
        counts(resumed)
        == counts(baseline)
        == {
            "status": JobStatus.COMPLETED,
            "total_rows": 37,
            "processed_rows": 37,
            "created": 15,
            "updated": 10,
            "unchanged": 10,
            "failed": 2,
        }
    )
    assert resumed.attempt == 2
    assert resumed_items == baseline_items


def _import_partial(
    tmp_path: Path, *, crash_after: int | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[ImportJob, dict[str, Any], list[tuple[int, str]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    seed = write_xlsx(tmp_path / "seed.xlsx", catalogue(8))
    assert run_job(queue_job(seed)).status == JobStatus.COMPLETED
    # In batches of 4, each batch mixes stored SKUs without a name (kept: 0-7), new SKUs
    # with one (created) and new SKUs without one (failed).
    rows: list[list[Any]] = [HEADER]
    for i in range(8):
        rows.append([f"SKU-{i:05d}", None, 1.5 + i + (i % 2), i])
        rows.append([f"NEW-{i}", f"New {i}" if i % 2 else None, 1, i])
    job_id = queue_job(write_xlsx(tmp_path / "partial.xlsx", rows), batch_size=4)
    if crash_after is not None:
        with monkeypatch.context() as patch:
            _crash_after(patch, crash_after)
            interrupted = run_job(job_id)
        assert interrupted.status == JobStatus.FAILED
        assert interrupted.last_batch == crash_after
    job = run_job(job_id)
    with session_scope(write=False) as session:
        errors = [(e["row"], e["message"]) for e in list_row_errors(session, job.id)]
    return job, stored_items(), errors


def test_resumed_partial_import_judges_new_skus_without_a_name_as_an_undisturbed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, switch_database: Any
) -> None:
    # The crash hits batch 3 after its items were merged: the rolled-back items it
    # created must not count as stored when the batch runs again.
    resumed = _import_partial(tmp_path / "a", crash_after=2, monkeypatch=monkeypatch)
    switch_database(tmp_path / "b" / "var")
    baseline = _import_partial(tmp_path / "b", crash_after=None, monkeypatch=monkeypatch)
    assert (
        counts(resumed[0])
        == counts(baseline[0])
        == {
            "status": JobStatus.COMPLETED,
            "total_rows": 16,
            "processed_rows": 16,
            "created": 4,
            "updated": 4,
            "unchanged": 4,
            "failed": 4,
        }
    )
    assert resumed[0].attempt == 2
    assert resumed[1] == baseline[1]
    assert (
        resumed[2]
        == baseline[2]
        == [
            (row, f"name is required to create item 'NEW-{i}'")
            for i, row in ((0, 3), (2, 7), (4, 11), (6, 15))
        ]
    )
    assert resumed[1]["SKU-00001"][0] == "Item 1"  # an empty name keeps the stored one


def test_progress_is_never_ahead_of_committed_items(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", catalogue(3000))
    job_id = queue_job(path, batch_size=50)
    samples: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with session_scope(write=False) as session:
                if session.get_bind().dialect.name == "postgresql":
                    # One snapshot for both reads, as SQLite's WAL readers get anyway.
                    session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
                job = session.execute(
                    text(
                        "SELECT processed_rows, created, previewing FROM import_job WHERE id = :id"
                    ),
                    {"id": job_id.hex},
                ).one()
                stored = session.scalar(select(func.count()).select_from(Item))
            # The guardrails' pass counts first, writing nothing: its counts say so.
            if not job[2]:
                samples.append((job[0], job[1], stored or 0))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        job = run_job(job_id)
    finally:
        stop.set()
        watcher.join()
    assert job.status == JobStatus.COMPLETED and job.created == 3000
    seen = [s for s in samples if s[0] > 0]
    assert len({s[0] for s in seen}) > 3, "the watcher should see several batches land"
    for processed, created, stored in samples:
        assert created == stored, "progress and items must commit together"
        assert processed == created
    processed_seen = [s[0] for s in samples]
    assert processed_seen == sorted(processed_seen)


def test_abort_mode_writes_nothing_and_keeps_the_full_error_report(tmp_path: Path) -> None:
    rows = catalogue(6) + [["SKU-X", "", 1, 1], ["SKU-Y", "Neg", -1, 1]]
    job = run_job(queue_job(write_xlsx(tmp_path / "a.xlsx", rows), on_error=OnError.ABORT))
    assert job.status == JobStatus.FAILED
    assert job.error is not None and "abort" in job.error and "\n" not in job.error
    assert stored_items() == {}
    with session_scope(write=False) as session:
        errors = list_row_errors(session, job.id)
    assert [(e["row"], e["column"]) for e in errors] == [(8, "name"), (9, "price")]


def test_dry_run_counts_everything_and_writes_nothing(tmp_path: Path) -> None:
    run_job(queue_job(write_xlsx(tmp_path / "seed.xlsx", catalogue(3))))
    before = stored_items()
    rows = catalogue(2) + [["SKU-00002", "Renamed", 3.5, 2], ["NEW-1", "New", 1, 1]]
    job = run_job(queue_job(write_xlsx(tmp_path / "b.xlsx", rows), dry_run=True))
    assert counts(job) == {
        "status": JobStatus.COMPLETED,
        "total_rows": 4,
        "processed_rows": 4,
        "created": 1,
        "updated": 1,
        "unchanged": 2,
        "failed": 0,
    }
    assert job.dry_run
    assert stored_items() == before


def test_unreadable_file_fails_the_job_with_a_one_line_reason(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    job = run_job(queue_job(path))
    assert job.status == JobStatus.FAILED
    assert job.error is not None and "\n" not in job.error and "Traceback" not in job.error
    assert "corrupt" in job.error
    assert stored_items() == {}


def test_rerunning_a_completed_job_changes_nothing(tmp_path: Path) -> None:
    job_id = queue_job(write_csv(tmp_path / "a.csv", catalogue(5)))
    first = run_job(job_id)
    second = run_job(job_id)
    assert counts(first) == counts(second)
    assert second.attempt == 1
    assert len(stored_items()) == 5


def test_a_database_hiccup_in_a_batch_is_retried_without_doubling_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    real = running_module.apply_batch
    failures = {"left": 2}

    def flaky(session: Any, job_id: uuid.UUID, **kwargs: Any) -> Any:
        outcome = real(session, job_id, **kwargs)
        if kwargs["batch_no"] == 2 and failures["left"]:
            failures["left"] -= 1
            raise OperationalError("COMMIT", {}, Exception("database is restarting"))
        return outcome

    monkeypatch.setattr(running_module, "apply_batch", flaky)
    job = run_job(queue_job(write_csv(tmp_path / "a.csv", catalogue(10)), batch_size=3))
    assert failures["left"] == 0
    assert counts(job) == {
        "status": JobStatus.COMPLETED,
        "total_rows": 10,
        "processed_rows": 10,
        "created": 10,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
    }
    assert len(stored_items()) == 10


def test_cancel_requested_stops_between_batches_and_keeps_committed_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = running_module.apply_batch
    job_id = queue_job(write_csv(tmp_path / "a.csv", catalogue(12)), batch_size=3)

    def cancel_after_second(session: Any, key: uuid.UUID, **kwargs: Any) -> Any:
        job = get_job(session, key)
        assert job is not None
        writing = not job.previewing  # past the guardrails' pass
        outcome = real(session, key, **kwargs)
        if writing and kwargs["batch_no"] == 2:
            job.cancel_requested = True  # as the API does, committed with this batch
        return outcome

    monkeypatch.setattr(running_module, "apply_batch", cancel_after_second)
    state = import_items(job_id=str(job_id), return_state=True)
    assert state.is_cancelled()
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        assert job.status == JobStatus.CANCELLED
        assert (job.processed_rows, job.created, job.last_batch) == (6, 6, 2)
        assert job.error is not None and "cancelled" in job.error
    assert len(stored_items()) == 6


def test_an_import_goes_on_when_prefect_cannot_show_its_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.import_items as flow_module
    import flows.job_hooks as hooks_module

    def artifact_api_down(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the artifact API answered 503")

    # A fault the test server cannot be made to show for artifacts alone. The progress bar
    # is the shared writer's (`flows.job_hooks`), the summary table the import flow's.
    for name in ("create_progress_artifact", "update_progress_artifact"):
        monkeypatch.setattr(hooks_module, name, artifact_api_down)
    monkeypatch.setattr(flow_module, "create_table_artifact", artifact_api_down)
    job_id = queue_job(write_xlsx(tmp_path / "items.xlsx", catalogue(120)), batch_size=50)

    job = run_job(job_id)

    assert (job.status, job.created, job.processed_rows) == (JobStatus.COMPLETED, 120, 120)
