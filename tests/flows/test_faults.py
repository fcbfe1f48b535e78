"""Real faults around a running import: PostgreSQL stopped mid-import, concurrent imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from db.migrate import upgrade_database
from db.models import ImportJob, JobSource, JobStatus, utcnow
from db.repository import get_job
from db.session import reset_engines, session_scope
from devtools import postgres
from flows.import_items import import_items
from itemsheet.jobs.importing import JobOptions, finish_job
from itemsheet.jobs.uploads import job_for_path
from settings import get_settings
from tests.contract.workbooks import write_xlsx
from tests.e2e.workers import (
    EXPECTED_COUNTS,
    counts,
    expected_items,
    job_row,
    seed_items,
    stored_items,
    write_mixed,
)
from tests.flows.test_import_items import queue_job

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cluster:
    """A PostgreSQL cluster a test may stop and start again."""

    url: str
    pg_ctl: str
    data: Path
    options: str
    log: Path

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: every connection is closed, the server is gone."""
        cmd = [self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"]
        subprocess.run(postgres._as_owner(cmd), check=True, capture_output=True)

    def start(self) -> None:
        """Start the stopped server again on the same port."""
        cmd = [self.pg_ctl, "-D", str(self.data), "-o", self.options, "-w", "-l", str(self.log)]
        subprocess.run(postgres._as_owner([*cmd, "start"]), check=True, capture_output=True)


@pytest.fixture
def restartable_postgres() -> Iterator[Cluster]:
    """A cluster of this test's own (the session's one must not go away under others)."""
    if not postgres.available():
        pytest.skip(postgres.INSTALL_HINT)
    initdb, pg_ctl = postgres._binary("initdb"), postgres._binary("pg_ctl")
    assert initdb and pg_ctl
    base = Path(tempfile.mkdtemp(prefix="importer-pg-outage-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = postgres._free_port()
    init = [initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"]
    subprocess.run(postgres._as_owner(init), check=True, capture_output=True)
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    cluster = Cluster(
        f"postgresql+psycopg://postgres@127.0.0.1:{port}", pg_ctl, data, options, base / "log"
    )
    cluster.start()
    try:
        yield cluster
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run(postgres._as_owner(stop), check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _queue(path: Path, batch_size: int) -> uuid.UUID:
    with session_scope() as session:
        options = JobOptions(batch_size=batch_size)
        return job_for_path(session, path, source=JobSource.CLI, options=options).id


def _write_batch_runs(flow_run_id: uuid.UUID) -> int:
    """How many times the flow run's write-batches task ran (1 + its retries)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return max(r.run_count for r in runs if r.name.startswith("write-batches"))


def test_postgresql_stopped_mid_import_is_waited_out_and_nothing_is_doubled(
    prefect_server: str,
    restartable_postgres: Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = postgres.create_database(restartable_postgres.url, "outage")
    monkeypatch.setenv("IMPORTER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("IMPORTER_DATABASE_URL", url)
    get_settings.cache_clear()
    reset_engines()
    try:
        upgrade_database()
        seed_items()
        job_id = _queue(write_mixed(tmp_path / "mixed.xlsx"), batch_size=100)
        runner = threading.Thread(target=import_items, kwargs={"job_id": str(job_id)})
        runner.start()
        deadline = time.monotonic() + 120
        # Past its guardrails' pass (whose count is its own), 2,000 rows into the write.
        while (job := job_row(job_id)).checking_guard or job.processed_rows < 2000:
            assert time.monotonic() < deadline and runner.is_alive(), vars(job)
            time.sleep(0.02)
        restartable_postgres.stop()
        assert job.processed_rows < EXPECTED_COUNTS["processed_rows"]  # stopped mid-way
        time.sleep(3)  # the outage itself: writes fail for a while, then the server is back
        restartable_postgres.start()
        runner.join(180)
        assert not runner.is_alive()
        job = job_row(job_id)
        assert counts(job) == EXPECTED_COUNTS, vars(job)
        assert stored_items() == expected_items()
        assert job.attempt == 1  # the same run waited the outage out
        assert job.flow_run_id is not None and _write_batch_runs(job.flow_run_id) >= 2
    finally:
        reset_engines()
        get_settings.cache_clear()


# Two files sharing 4,000 SKUs; B lists its SKUs backwards, so writes that interleaved
# batch by batch would leave a mix that no serial order produces.
CONCURRENT_ROWS = 8_000
SHARED_FROM = 4_000


def _concurrent_files(tmp_path: Path) -> tuple[Path, Path]:
    header = ["SKU", "Name", "Price", "Qty"]
    a = [header] + [[f"C-{i:06d}", f"A {i}", 2.0, i] for i in range(CONCURRENT_ROWS)]
    b_range = range(SHARED_FROM + CONCURRENT_ROWS - 1, SHARED_FROM - 1, -1)
    # Prices 2 and 3: each file changes the other's by at most 50 %, within the guardrails.
    b = [header] + [[f"C-{i:06d}", f"B {i}", 3.0, i] for i in b_range]
    return write_xlsx(tmp_path / "a.xlsx", a), write_xlsx(tmp_path / "b.xlsx", b)


def _serial_outcome(first: str) -> tuple[dict[str, tuple[Any, ...]], dict[str, dict[str, int]]]:
    """Items and per-file counts when `first` ("a" or "b") runs entirely before the other."""
    ranges = {"a": range(CONCURRENT_ROWS), "b": range(SHARED_FROM, SHARED_FROM + CONCURRENT_ROWS)}
    prices = {"a": Decimal(2), "b": Decimal(3)}
    second = "b" if first == "a" else "a"
    items: dict[str, tuple[Any, ...]] = {}
    job_counts = {}
    for name in (first, second):
        created = sum(1 for i in ranges[name] if f"C-{i:06d}" not in items)
        job_counts[name] = {
            "created": created,
            "updated": CONCURRENT_ROWS - created,
            "unchanged": 0,
        }
        for i in ranges[name]:
            items[f"C-{i:06d}"] = (f"{name.upper()} {i}", prices[name], i)
    return items, job_counts


def _hold_the_writer_turn(path: Path) -> uuid.UUID:
    """A job that is writing items, as an import already under way would be."""
    job_id = queue_job(path)
    with session_scope() as session:
        job = get_job(session, job_id)
        assert job is not None
        job.status = JobStatus.PROCESSING
        job.writing_since = utcnow()
    return job_id


def _wait_until_both_wait(holder: uuid.UUID, procs: list[subprocess.Popen[bytes]]) -> None:
    """Until both imports have read their sheet and wait for the writer's turn."""
    deadline = time.monotonic() + 240
    while True:
        with session_scope(write=False) as session:
            jobs = session.scalars(select(ImportJob).where(ImportJob.id != holder)).all()
            ready = [j for j in jobs if j.status == JobStatus.PROCESSING and j.total_rows]
        if len(ready) == 2:
            return
        for proc in procs:
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"an import ended early: {err.decode()[-3000:]}")
        assert time.monotonic() < deadline, [(j.status, j.total_rows) for j in jobs]
        time.sleep(0.1)


def test_two_imports_of_the_same_skus_at_once_end_as_if_run_one_after_the_other(
    prefect_server: str, importer_env: Path, tmp_path: Path
) -> None:
    files = _concurrent_files(tmp_path)
    env = dict(os.environ) | {"PREFECT_API_URL": prefect_server}
    # Both imports start while another holds the writer's turn, and compete for it once it
    # ends: they run at the same time however long each takes to start.
    holder = _hold_the_writer_turn(files[0])
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "import",
                str(path),
                "--batch-size",
                "100",
                "--json",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for path in files
    ]
    try:
        _wait_until_both_wait(holder, procs)
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    with session_scope() as session:
        finish_job(session, holder, JobStatus.COMPLETED)
    reports = {}
    for name, proc in zip("ab", procs, strict=True):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
        reports[name] = json.loads(out.decode().strip().splitlines()[-1])
    a, b = reports["a"], reports["b"]
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"], (
        "the two imports did not run at the same time"
    )
    first = "a" if a["finished_at"] < b["finished_at"] else "b"
    items, job_counts = _serial_outcome(first)
    got = {k: {c: reports[k][c] for c in ("created", "updated", "unchanged")} for k in "ab"}
    assert got == job_counts
    assert stored_items() == items
