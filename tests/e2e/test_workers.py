"""The production shape: several `importer worker` processes on one work pool, PostgreSQL.

Each worker polls the `importer` work pool (its runs start cold: warm starts are
`tests/e2e/test_crashes.py`'s); the importer's database is a throwaway PostgreSQL cluster. Imports run on whichever worker has room, and a
worker that dies mid-import has its import finished by the other, with exact counts.
"""

from __future__ import annotations

import os
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.contract.workbooks import write_xlsx
from tests.e2e.workers import (
    EXPECTED_COUNTS,
    FINAL,
    counts,
    expected_items,
    flow_run_process,
    hold_dir,
    import_gate,
    queue_import,
    running_workers,
    seed_items,
    stored_items,
    wait_until,
    worker_of,
    write_mixed,
)

pytestmark = pytest.mark.stack
OTHER_ROWS = 3000


@pytest.fixture(params=["postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _other_sheet(path: Path) -> Path:
    rows: list[list[Any]] = [["SKU", "Name", "Price", "Qty"]]
    rows += [[f"L-{i:05d}", f"Other {i}", 1.0, i] for i in range(OTHER_ROWS)]
    return write_xlsx(path, rows)


def test_two_workers_share_the_pool_and_a_dead_workers_import_resumes_on_the_other(
    importer_env: Path, prefect_server: str, tmp_path: Path
) -> None:
    seed_items()
    mixed, other = write_mixed(tmp_path / "mixed.xlsx"), _other_sheet(tmp_path / "other.xlsx")
    with (
        running_workers(importer_env, prefect_server, count=0) as workers,
        import_gate(hold_dir(importer_env), mixed.name, after_rows=300) as gate,
    ):
        # The first worker takes one import at a time, so the second import needs the other.
        one = workers.start(IMPORTER_WORKER_LIMIT="1")
        first = queue_import(mixed)
        first_pid = gate.wait_held()
        assert worker_of(first_pid) == one.pid
        two = workers.start()
        second = queue_import(other)
        running = wait_until(
            second, lambda j: str(j.status) == "processing", what=f"processing\n{workers.logs()}"
        )
        assert running.flow_run_id is not None
        assert worker_of(flow_run_process(running.flow_run_id)) == two.pid

        # The first worker's machine goes away: the worker and its run at once.
        os.kill(one.pid, signal.SIGKILL)
        os.kill(first_pid, signal.SIGKILL)
        gate.release()

        resumed = wait_until(
            first, lambda j: str(j.status) in FINAL, what=f"the resumed import\n{workers.logs()}"
        )
        assert counts(resumed) == EXPECTED_COUNTS, (vars(resumed), workers.logs())
        assert resumed.attempt >= 2 and resumed.resumes >= 1
        done = wait_until(second, lambda j: str(j.status) in FINAL, what="the second import")
        assert (str(done.status), done.created, done.failed) == ("completed", OTHER_ROWS, 0)
    others = {f"L-{i:05d}": (f"Other {i}", Decimal(1), i) for i in range(OTHER_ROWS)}
    assert stored_items() == expected_items() | others
