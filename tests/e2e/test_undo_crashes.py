"""A real kill -9 of the process running an undo, on a real worker: the reconciler resumes it
through the undo deployment and it ends exactly as an undisturbed undo does."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from db.session import session_scope
from itemsheet.jobs.undoing import create_undo_job
from orchestration.dispatch import dispatch_once
from orchestration.trigger import PrefectTrigger
from settings import get_settings
from tests.e2e.workers import (
    EXPECTED_COUNTS,
    FINAL,
    SEEDED,
    Workers,
    counts,
    flow_run_process,
    hold_dir,
    import_gate,
    job_row,
    queue_import,
    running_workers,
    seed_items,
    stored_items,
    wait_until,
    write_mixed,
)

pytestmark = pytest.mark.stack


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def workers(importer_env: Path, prefect_server: str) -> Iterator[Workers]:
    seed_items()
    with running_workers(importer_env, prefect_server, count=1) as running:
        yield running


def seeded_items() -> dict[str, tuple[Any, ...]]:
    """The items as `seed_items` left them: what undoing the mixed import must give back."""
    return {f"K-{i:06d}": (f"Item {i}", Decimal(2), i) for i in range(SEEDED)}


def start_undo(import_id: uuid.UUID) -> uuid.UUID:
    """Create the undo job and its run, as the API and its dispatcher do."""
    with session_scope() as session:
        undo_id = create_undo_job(session, import_id, force=False, undo_days=30).id

    async def dispatch() -> None:
        trigger = PrefectTrigger()
        try:
            deadline = time.monotonic() + 120
            while await dispatch_once(trigger, get_settings(), only=undo_id):
                assert time.monotonic() < deadline, vars(job_row(undo_id))
                await asyncio.sleep(0.5)
        finally:
            await trigger.aclose()

    asyncio.run(dispatch())
    return undo_id


def test_kill_9_of_the_undo_run_resumes_through_its_deployment_and_ends_exactly(
    workers: Workers, importer_env: Path, tmp_path: Path
) -> None:
    import_id = queue_import(write_mixed(tmp_path / "mixed.xlsx"))
    imported = wait_until(import_id, lambda j: str(j.status) in FINAL, what=workers.logs())
    assert counts(imported) == EXPECTED_COUNTS, vars(imported)
    with import_gate(hold_dir(importer_env), "undo of mixed.xlsx", after_rows=3000) as gate:
        undo_id = start_undo(import_id)
        pid = gate.wait_held()
        undo = job_row(undo_id)
        assert undo.flow_run_id is not None and flow_run_process(undo.flow_run_id) == pid
        os.kill(pid, signal.SIGSTOP)  # held still while the gate goes, then killed
    killed = job_row(undo_id)
    assert str(killed.status) == "processing" and 3000 <= killed.processed_rows < 11_500
    os.kill(pid, signal.SIGKILL)
    done = wait_until(undo_id, lambda j: str(j.status) in FINAL, what=workers.logs())
    assert str(done.status) == "completed", (vars(done), workers.logs())
    assert done.attempt >= 2 and done.resumes >= 1
    assert (done.total_rows, done.processed_rows) == (11_500, 11_500)
    assert (done.deleted, done.updated, done.failed) == (11_000, 500, 0)
    assert stored_items() == seeded_items()
    undone = job_row(import_id)
    assert str(undone.status) == "undone" and counts(undone) | {"status": "completed"} == (
        EXPECTED_COUNTS
    )
