"""`importer up` with both databases on PostgreSQL: the items and Prefect's own server."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from devtools import postgres
from devtools.stack import ROOT, RunningStack, final_flow_run, running_stack, wait_for
from tests.contract.workbooks import write_xlsx

pytestmark = [pytest.mark.stack, pytest.mark.timeout(420)]

UPLOADS = 5
ROWS = 2000
BAD_ROWS = (0, 1234)
POLLERS = 50
POLL_FOR_S = 15.0
REPORT = ROOT / "test-output" / "postgres-stack.json"


@pytest.fixture(scope="module")
def databases(postgres_server: str) -> tuple[str, str]:
    """Two new databases on the throwaway cluster: the items' (psycopg) and Prefect's (asyncpg)."""
    suffix = uuid.uuid4().hex[:12]
    items = postgres.create_database(postgres_server, f"items_{suffix}")
    prefect = postgres.create_database(postgres_server, f"prefect_{suffix}")
    return items, prefect.replace("postgresql+psycopg://", "postgresql+asyncpg://")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, databases: tuple[str, str]
) -> Iterator[RunningStack]:
    items_url, prefect_url = databases
    env = {
        "IMPORTER_DATABASE_URL": items_url,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_url,
    }
    # As on a real server: the schema is created with `importer db upgrade` first.
    migrate = [sys.executable, "-m", "cli.main", "db", "upgrade"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "IMPORTER_"))}
    subprocess.run(migrate, cwd=ROOT, env=clean | env, check=True, capture_output=True)
    with running_stack(tmp_path_factory.mktemp("pg-stack") / "var", extra_env=env) as running:
        yield running


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://").replace(
        "postgresql+asyncpg://", "postgresql://"
    )


def quantiles_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def poll_progress(api: str, job_ids: list[str]) -> list[float]:
    """`POLLERS` clients asking for a job's progress back to back for `POLL_FOR_S`."""
    latencies: list[float] = []
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout could close one
    # as it is reused (a failed read httpx reports, where a browser retries unseen).
    limits = httpx.Limits(max_connections=POLLERS, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as client:
        until = time.monotonic() + POLL_FOR_S

        async def one(n: int) -> None:
            url = f"/api/excel/import/{job_ids[n % len(job_ids)]}/progress"
            while time.monotonic() < until:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
                await asyncio.sleep(0.2)

        async with asyncio.TaskGroup() as group:
            for n in range(POLLERS):
                group.create_task(one(n))
    return latencies


def test_up_on_postgresql_imports_into_postgresql_and_prefect_records_the_runs_there(
    stack: RunningStack, databases: tuple[str, str], tmp_path: Path
) -> None:
    items_url, prefect_url = databases
    paths = []
    for n in range(UPLOADS):
        rows: list[list[Any]] = [["SKU", "Name", "Price", "Qty"]]
        rows += [[f"P{n}-{i:05d}", f"Item {i}", 0.5 + i, i] for i in range(ROWS)]
        for bad in BAD_ROWS:
            rows[bad + 1][3] = -1  # a negative quantity: a row error
        paths.append(write_xlsx(tmp_path / f"pg-{n}.xlsx", rows))

    upload_s, job_ids = [], []
    with httpx.Client(base_url=stack.api, timeout=60) as client:
        health = client.get("/api/health").json()
        assert (health["status"], health["database"], health["prefect"]) == ("ready", "ok", "ok")
        started = time.monotonic()
        for path in paths:
            with path.open("rb") as f:
                sent = time.perf_counter()
                response = client.post("/api/excel/import", files={"file": (path.name, f)})
                upload_s.append(time.perf_counter() - sent)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["job_id"])
        poll_s = asyncio.run(poll_progress(stack.api, job_ids))
        jobs = [wait_for(client, j, {"completed", "failed", "cancelled"}, 180) for j in job_ids]
        all_done_s = time.monotonic() - started

    report = {
        "uploads": UPLOADS,
        "rows_per_upload": ROWS,
        "upload": quantiles_ms(upload_s),
        f"progress_{POLLERS}_clients": quantiles_ms(poll_s),
        "uploads_to_all_completed_s": round(all_done_s, 1),
        "job_rows_per_s": [job["rows_per_s"] for job in jobs],
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print("\npostgres stack:", json.dumps(report, indent=2))

    for job in jobs:
        assert job["status"] == "completed", job
        assert (job["created"], job["failed"]) == (ROWS - len(BAD_ROWS), len(BAD_ROWS)), job

    # The items are in PostgreSQL (and no SQLite database was made beside it).
    with psycopg.connect(libpq(items_url)) as db:
        stored = dict(db.execute("SELECT sku, quantity FROM item").fetchall())
        errors = db.execute("SELECT count(*) FROM import_row_error").fetchone()
    assert len(stored) == UPLOADS * (ROWS - len(BAD_ROWS))
    assert stored["P3-00007"] == 7 and "P3-01234" not in stored
    assert errors == (UPLOADS * len(BAD_ROWS),)
    assert not (stack.data_dir / "importer.db").exists()

    # Prefect's server answers for the runs, and keeps them in its PostgreSQL database.
    runs = [final_flow_run(stack.prefect_api, job["flow_run_id"]) for job in jobs]
    assert [run.name for run in runs] == [f"import {path.name}" for path in paths]
    assert all(run.state is not None and run.state.is_completed() for run in runs)
    with psycopg.connect(libpq(prefect_url)) as db:
        recorded = db.execute(
            "SELECT count(*) FROM flow_run WHERE id = ANY(%s) AND state_type = 'COMPLETED'",
            [[uuid.UUID(job["flow_run_id"]) for job in jobs]],
        ).fetchone()
    assert recorded == (UPLOADS,)
    assert not list((stack.data_dir / "prefect").glob("*.db"))
