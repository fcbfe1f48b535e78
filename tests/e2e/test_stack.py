"""The real stack as users meet it: `importer up`, uploads over HTTP, progress, Prefect runs.

The tests share their test process's stack (`shared_stack`), each with its own files and
SKU prefixes; the upload sent the moment the API answers starts a whole new stack."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.stack import RunningStack, final_flow_run, running_stack, wait_for
from orchestration.names import REIMPORT_DEPLOYMENT, WORK_POOL
from tests.contract.workbooks import write_xlsx
from tests.e2e.workers import held, import_gate

pytestmark = pytest.mark.stack

ROWS = 3000


def catalogue(n: int, *, price: float = 2.0, prefix: str = "E") -> list[list[Any]]:
    return [["SKU", "Name", "Price", "Qty"]] + [
        [f"{prefix}-{i:06d}", f"Item {i}", price, i] for i in range(n)
    ]


@pytest.fixture
def stack(shared_stack: RunningStack) -> RunningStack:
    return shared_stack


@pytest.fixture
def client(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api, timeout=30) as http:
        yield http


def upload(client: httpx.Client, path: Path, **form: str) -> httpx.Response:
    with path.open("rb") as f:
        return client.post("/api/excel/import", files={"file": (path.name, f)}, data=form)


def items(stack: RunningStack) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(stack.data_dir / "importer.db") as db:
        return {r[0]: r[1:] for r in db.execute("SELECT sku, name, price, quantity FROM item")}


def test_upload_is_imported_by_a_prefect_run_and_progress_reaches_completed(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "first.xlsx", catalogue(ROWS))
    started = time.perf_counter()
    response = upload(client, path)
    assert response.status_code == 202, response.text
    assert time.perf_counter() - started < 20  # at once; latency itself is benchmarked
    body = response.json()
    seen = []
    job = wait_for(client, body["job_id"], {"processing", "completed"})
    while job["status"] not in ("completed", "failed", "cancelled"):
        seen.append(job["processed_rows"])
        time.sleep(0.1)
        job = client.get(body["progress_url"]).json()
    assert job["status"] == "completed", job
    assert (job["total_rows"], job["created"], job["percent"]) == (ROWS, ROWS, 100.0)
    assert seen == sorted(seen)
    assert job["flow_run_id"] and job["flow_run_url"]
    assert len(items(stack)) >= ROWS
    run = final_flow_run(stack.prefect_api, job["flow_run_id"])
    assert run.name == "import first.xlsx"
    assert run.state is not None and run.state.is_completed(), run.state
    # Labelled with the worker that carried it out, as Prefect's own workers label runs
    # (given while the run starts, not before, and tried again while Prefect's database is
    # busy: so possibly after the run ended).
    labels = labels_of(stack, job["flow_run_id"])
    assert labels["prefect.worker.type"] == "importer"
    assert labels["prefect.work-pool.name"] == f"{stack.name_prefix}{WORK_POOL}"
    assert labels["prefect.worker.name"]


def labels_of(stack: RunningStack, flow_run_id: str, timeout: float = 120) -> dict[str, Any]:
    """The run's labels once its worker's are there (or as they are at `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        labels = dict(final_flow_run(stack.prefect_api, flow_run_id).labels)
        if "prefect.worker.type" in labels or time.monotonic() > deadline:
            return labels
        time.sleep(0.2)


def test_events_stream_progress_and_end_with_the_final_state(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "stream.xlsx", catalogue(500, price=3.5, prefix="ES"))
    job_id = upload(client, path).json()["job_id"]
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/api/excel/import/{job_id}/events", timeout=180) as stream:
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
    assert events[-1][0] == "done"
    assert events[-1][1]["status"] == "completed"
    assert events[-1][1]["created"] == 500
    progress = [e for n, e in events if n == "progress"]
    assert progress and [e["processed_rows"] for e in progress] == sorted(
        e["processed_rows"] for e in progress
    )


def test_same_file_twice_while_running_is_409_unless_forced(
    client: httpx.Client, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "dup.xlsx", catalogue(ROWS, price=4.0, prefix="ED"))
    first = upload(client, path)
    assert first.status_code == 202
    second = upload(client, path)
    assert second.status_code == 409
    assert second.json()["job_id"] == first.json()["job_id"]
    forced = upload(client, path, force="true")
    assert forced.status_code == 202
    for job_id in (first.json()["job_id"], forced.json()["job_id"]):
        assert wait_for(client, job_id, {"completed", "failed"})["status"] == "completed"


def test_cancel_mid_import_then_retry_resumes_to_exact_counts(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "stack-long.xlsx", catalogue(20_000, price=5.0, prefix="EC"))
    with import_gate(stack.hold_dir, path.name, after_rows=300) as gate:
        job_id = upload(client, path).json()["job_id"]
        with held(gate):
            assert client.post(f"/api/excel/import/{job_id}/cancel").status_code == 202
    cancelled = wait_for(client, job_id, {"cancelled", "completed", "failed"})
    assert cancelled["status"] == "cancelled", cancelled
    assert 0 < cancelled["processed_rows"] < 20_000
    committed = sum(1 for sku in items(stack) if sku.startswith("EC-"))
    assert committed == cancelled["created"] == cancelled["processed_rows"]
    assert client.post(f"/api/excel/import/{job_id}/cancel").status_code == 409

    assert client.post(f"/api/excel/import/{job_id}/retry").status_code == 202
    done = wait_for(client, job_id, {"completed", "failed"}, timeout=240)
    assert done["status"] == "completed", done
    assert (done["processed_rows"], done["created"], done["failed"]) == (20_000, 20_000, 0)
    assert sum(1 for sku in items(stack) if sku.startswith("EC-")) == 20_000


def test_oversize_and_non_spreadsheet_uploads_are_refused(
    client: httpx.Client, tmp_path: Path
) -> None:
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    refused = upload(client, png)
    assert refused.status_code == 415
    assert "xlsx" in refused.json()["detail"]
    big = tmp_path / "big.csv"
    big.write_bytes(b"SKU,Name\n" + b"A,b\n" * 2**19)  # 2 MiB of CSV; the limit is 1 MiB
    assert upload(client, big).status_code == 413


def test_scheduled_reimport_imports_then_skips_an_unchanged_file(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    source = write_xlsx(
        stack.data_dir.parent / "feeds" / "feed.xlsx", catalogue(50, price=7.0, prefix="EF")
    )
    deployment = stack.deployment("reimport-items", REIMPORT_DEPLOYMENT)
    with temporary_settings({PREFECT_API_URL: stack.prefect_api}):
        for _ in range(2):
            run = run_deployment(deployment, parameters={"source": str(source)}, timeout=180)
            assert run.state is not None and run.state.is_completed(), run.state
    history = client.get("/api/excel/imports", params={"source": "schedule"}).json()
    jobs = history["items"] if isinstance(history, dict) else history
    latest, first = jobs[0], jobs[1]
    assert first["status"] == latest["status"] == "completed"
    assert first["updated"] + first["created"] == 50
    assert any("unchanged" in w for w in latest["warnings"])


def test_a_stack_given_a_prefect_server_starts_none_and_serves_under_its_name_prefix(
    stack: RunningStack, client: httpx.Client
) -> None:
    # `importer up` with PREFECT_API_URL set, as the shared stack is started.
    groups = json.loads((stack.data_dir / "stack.json").read_text())["groups"]
    assert set(groups) == {"worker", "api"}
    health = client.get("/api/health").json()
    assert (health["ready"], health["prefect"]) == (True, "ok"), health
    assert stack.name_prefix
    pool = httpx.get(f"{stack.prefect_api}/work_pools/{stack.name_prefix}{WORK_POOL}", timeout=30)
    assert pool.status_code == 200, pool.text
    assert "starting Prefect server" not in stack.log.read_text()


def test_an_upload_sent_as_soon_as_health_answers_is_accepted_and_completes(
    tmp_path: Path,
) -> None:
    # The whole start-up as a new user meets it: its own new Prefect server, warm spares.
    path = write_xlsx(tmp_path / "early.xlsx", catalogue(ROWS, price=6.0, prefix="EE"))
    with running_stack(
        tmp_path / "var", wait_ready=False, fresh_prefect=True, spares=True
    ) as early:
        deadline = time.monotonic() + 240
        with httpx.Client(base_url=early.api, timeout=30) as http:
            while True:  # the first 200 from /api/health, long before a worker is ready
                try:
                    health = http.get("/api/health")
                    if health.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API never answered"
                time.sleep(0.05)
            answer = upload(http, path)
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["job_id"]
            seen = http.get(f"/api/excel/import/{job_id}/progress").json()
            done = wait_for(http, job_id, {"completed", "failed", "cancelled"}, timeout=240)
    # Up, not ready: the upload was accepted and waited, pending, for a worker to start it.
    assert (health.json()["status"], health.json()["ready"]) == ("up", False), health.json()
    assert seen["status"] == "pending", seen
    assert done["status"] == "completed", done
    assert (done["created"], done["failed"]) == (ROWS, 0)
