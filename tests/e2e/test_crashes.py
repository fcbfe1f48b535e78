"""Real kills, stops and freezes of the processes running an import, on real workers.

`importer worker` processes serve the deployments (two where the import must resume on the
other, one otherwise); a test interrupts the one running an import and checks that the job
still ends exactly as an uninterrupted import does.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.stack import final_flow_run, running_stack
from tests.e2e.workers import (
    EXPECTED_COUNTS,
    FAST_RECOVERY,
    FINAL,
    Workers,
    counts,
    expected_items,
    flow_run_created_at,
    flow_run_process,
    freeze_between_transactions,
    hold_dir,
    import_gate,
    is_spare,
    job_row,
    process_started_at,
    queue_import,
    running_workers,
    seed_items,
    stored_items,
    wait_until,
    worker_of,
    write_mixed,
)

pytestmark = pytest.mark.stack


@pytest.fixture
def workers(importer_env: Path, prefect_server: str) -> Iterator[Workers]:
    seed_items()
    with running_workers(importer_env, prefect_server) as running:
        yield running


@pytest.fixture
def worker(importer_env: Path, prefect_server: str) -> Iterator[Workers]:
    """One worker, for the tests whose import needs no second one to resume on (a worker
    takes two imports at once, so a resume finds a slot beside a frozen run)."""
    seed_items()
    with running_workers(importer_env, prefect_server, count=1) as running:
        yield running


@pytest.fixture
def warm_workers(importer_env: Path, prefect_server: str) -> Iterator[Workers]:
    """Workers that keep a warm interpreter each, as in production: for the tests of a run
    that starts in one (the rest start their runs cold, which changes nothing they check)."""
    seed_items()
    with running_workers(importer_env, prefect_server, spares=1) as running:
        yield running


def _interrupt_mid_import(tmp_path: Path, data_dir: Path) -> tuple[object, int]:
    """Queue the mixed import; once 300 rows are committed, hold its run at the gate between
    two batches, freeze it there (so it cannot finish however fast the machine) and return
    (job id, run pid). The gate is gone by then, so a resumed attempt runs straight on."""
    with import_gate(hold_dir(data_dir), "mixed.xlsx", after_rows=300) as gate:
        job_id = queue_import(write_mixed(tmp_path / "mixed.xlsx"))
        pid = gate.wait_held()
        job = job_row(job_id)
        assert job.flow_run_id is not None and flow_run_process(job.flow_run_id) == pid
        # Its heartbeat thread may be inside a (tiny) transaction: freeze it outside one.
        freeze_between_transactions(pid, data_dir / "importer.db")
    assert job_row(job_id).status == "processing", "the import ended before it was frozen"
    return job_id, pid


def _assert_exact(job_id: object, workers: Workers) -> None:
    job = wait_until(
        job_id,
        lambda j: str(j.status) in {"completed", "failed", "cancelled"},
        what=f"a final status\n{workers.logs()}",
    )
    assert counts(job) == EXPECTED_COUNTS, (vars(job), workers.logs())
    assert stored_items() == expected_items()


def test_an_import_starts_in_a_warm_interpreter_and_kill_9_of_it_resumes_exactly(
    warm_workers: Workers, importer_env: Path, tmp_path: Path
) -> None:
    warm_workers.wait_started()
    job_id, pid = _interrupt_mid_import(tmp_path, importer_env)
    run_id = job_row(job_id).flow_run_id
    assert run_id is not None
    # The run went to an interpreter its worker had prepared before the run existed.
    assert is_spare(pid), warm_workers.logs()
    assert process_started_at(pid) < flow_run_created_at(run_id), warm_workers.logs()
    os.kill(pid, signal.SIGKILL)
    _assert_exact(job_id, warm_workers)
    job = job_row(job_id)
    assert job.attempt >= 2 and job.resumes >= 1


def test_kill_9_of_a_whole_worker_is_noticed_by_its_silence_and_resumed(
    warm_workers: Workers, importer_env: Path, tmp_path: Path
) -> None:
    job_id, pid = _interrupt_mid_import(tmp_path, importer_env)
    worker = worker_of(pid)
    # The machine goes away: the worker (which would report the crash) and its run at once;
    # its unused spare is left without its worker.
    os.kill(worker, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    _assert_exact(job_id, warm_workers)
    assert job_row(job_id).attempt >= 2


def test_sigterm_to_the_worker_is_no_user_cancel_and_the_job_resumes_elsewhere(
    workers: Workers, importer_env: Path, tmp_path: Path
) -> None:
    job_id, pid = _interrupt_mid_import(tmp_path, importer_env)
    worker = next(p for p in workers.procs if p.pid == worker_of(pid))
    worker.send_signal(signal.SIGTERM)
    os.kill(pid, signal.SIGCONT)  # the run goes on until the worker's stop reaches it
    worker.wait(60)
    seen = set()
    while str((job := job_row(job_id)).status) not in {"completed", "failed", "cancelled"}:
        seen.add(str(job.status))
        time.sleep(0.05)
    assert str(job.status) != "cancelled", (vars(job), workers.logs())
    _assert_exact(job_id, workers)
    assert seen <= {"processing"}


def test_a_frozen_attempt_that_wakes_after_its_resume_writes_nothing(
    worker: Workers, importer_env: Path, tmp_path: Path
) -> None:
    job_id, pid = _interrupt_mid_import(tmp_path, importer_env)
    old_run = job_row(job_id).flow_run_id
    try:
        resumed = wait_until(
            job_id,
            lambda j: j.attempt >= 2 and j.processed_rows > 300,
            what="a resume by another attempt",
        )
        assert resumed.attempt >= 2
    finally:
        os.kill(pid, signal.SIGCONT)
    _assert_exact(job_id, worker)
    # The old attempt woke up, met the fence (StaleAttempt) and ended without writing.
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and b"Z" not in _state(pid):
        assert time.monotonic() < deadline, "the woken attempt did not end"
        time.sleep(0.2)
    assert counts(job_row(job_id)) == EXPECTED_COUNTS
    assert "StaleAttempt" in _writer_outcome(old_run)


def _writer_outcome(flow_run_id: object) -> str:
    """The final state message of a flow run's write-batches task."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return " ".join(
        str(r.state.message) for r in runs if r.name.startswith("write-batches") and r.state
    )


def _state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return b"Z"


def test_after_the_last_attempt_the_job_fails_with_a_reason(
    importer_env: Path, prefect_server: str, tmp_path: Path
) -> None:
    seed_items()
    with running_workers(importer_env, prefect_server, count=1, IMPORTER_MAX_ATTEMPTS="1") as w:
        job_id, pid = _interrupt_mid_import(tmp_path, importer_env)
        os.kill(pid, signal.SIGKILL)
        job = wait_until(job_id, lambda j: str(j.status) == "failed", what=f"failed\n{w.logs()}")
    assert "interrupted 1 time" in (job.error or "") and "retry the job" in (job.error or "")
    assert "\n" not in (job.error or "")
    assert 300 <= job.processed_rows < EXPECTED_COUNTS["processed_rows"]
    assert len(stored_items()) == 1000 + job.created


def test_an_import_stopped_with_the_service_resumes_when_the_service_starts_again(
    importer_env: Path, tmp_path: Path, prefect_server: str
) -> None:
    seed_items()
    # Both starts on the session's Prefect server under one name, as one service would be.
    fast = {k.removeprefix("IMPORTER_").lower(): v for k, v in FAST_RECOVERY.items()}
    fast |= {"prefect_api": prefect_server, "name_prefix": f"restart-{uuid.uuid4().hex[:8]}-"}
    path = write_mixed(tmp_path / "mixed.xlsx")
    with (
        import_gate(hold_dir(importer_env), path.name, after_rows=300) as gate,
        running_stack(importer_env, **fast) as stack,
        httpx.Client(base_url=stack.api) as client,
    ):
        with path.open("rb") as f:
            answer = client.post("/api/excel/import", files={"file": (path.name, f)}, timeout=60)
        assert answer.status_code == 202, answer.text
        job_id = uuid.UUID(answer.json()["job_id"])
        gate.wait_held()  # mid-import, however fast the machine, when the stack stops
    # `importer up` got Ctrl-C and stopped everything, the run included.
    stopped = job_row(job_id)
    assert str(stopped.status) == "processing", vars(stopped)
    assert stopped.processed_rows < EXPECTED_COUNTS["processed_rows"]
    with running_stack(importer_env, **fast) as stack:
        job = wait_until(job_id, lambda j: str(j.status) in FINAL, what="the resumed import")
        assert counts(job) == EXPECTED_COUNTS, (vars(job), stack.log.read_text()[-3000:])
    assert stored_items() == expected_items()


def test_cancel_from_prefect_ends_the_job_cancelled_with_what_was_committed(
    worker: Workers, importer_env: Path, prefect_server: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    with import_gate(hold_dir(importer_env), "mixed.xlsx", after_rows=300) as gate:
        job_id = queue_import(write_mixed(tmp_path / "mixed.xlsx"))
        gate.wait_held()
        run_id = job_row(job_id).flow_run_id
        assert run_id is not None
        with get_client(sync_client=True) as client:  # what the UI's Cancel button does
            client.set_flow_run_state(run_id, Cancelling(), force=True)
        # Held at the gate until the cancel reaches it, however slow Prefect is to deliver it.
        job = wait_until(job_id, lambda j: str(j.status) in FINAL, what=f"an end\n{worker.logs()}")
    assert str(job.status) == "cancelled", (vars(job), worker.logs())
    assert 300 <= job.processed_rows < EXPECTED_COUNTS["processed_rows"]
    assert len(stored_items()) == 1000 + job.created
    run = final_flow_run(prefect_server, str(run_id))
    assert run.state is not None and run.state.is_cancelled(), run.state


def test_retry_from_prefect_of_a_failed_run_resumes_after_the_last_batch(
    importer_env: Path, prefect_server: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import AwaitingRetry

    seed_items()
    with running_workers(importer_env, prefect_server, count=1, IMPORTER_MAX_ATTEMPTS="1") as w:
        job_id, pid = _interrupt_mid_import(tmp_path, importer_env)
        os.kill(pid, signal.SIGKILL)
        failed = wait_until(job_id, lambda j: str(j.status) == "failed", what=f"failed\n{w.logs()}")
        assert failed.flow_run_id is not None
        # What the Retry button of the Prefect UI does: the run goes back to the work pool.
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                failed.flow_run_id, AwaitingRetry(message="Retry from the UI"), force=True
            )
        job = wait_until(job_id, lambda j: str(j.status) == "completed", what=w.logs())
    assert counts(job) == EXPECTED_COUNTS, vars(job)
    assert job.flow_run_id == failed.flow_run_id and job.attempt > failed.attempt
    assert stored_items() == expected_items()


def test_a_job_whose_api_died_before_it_asked_prefect_is_started_by_a_worker(
    worker: Workers, importer_env: Path, tmp_path: Path
) -> None:
    # The API committed the job and asked for a run, then died before creating it.
    job_id = queue_import(write_mixed(tmp_path / "mixed.xlsx"), start=False)
    # No API runs here: a worker's reconciler round finds the job and creates its run.
    _assert_exact(job_id, worker)
    assert job_row(job_id).flow_run_id is not None
