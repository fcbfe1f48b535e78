"""Import events on the real stack: Prefect's event API lists them, an automation applied by
`importer automations apply` posts a failure to a webhook, and a run's page shows them.

On the test process's shared stack and Prefect server: the events and webhook posts of
other tests' jobs are there too, so each check picks its own jobs'."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.models import JobSource, JobStatus
from db.session import reset_engines, session_scope
from devtools.stack import ROOT, RunningStack, final_flow_run, wait_for
from itemsheet.jobs.importing import JobOptions
from itemsheet.jobs.uploads import job_for_path
from orchestration.automations import load_spec
from settings import get_settings
from tests.contract.workbooks import write_xlsx
from tests.e2e.workers import held, import_gate

pytestmark = pytest.mark.stack

ENDED = {"completed", "failed", "cancelled"}
NO_SKU = b"Foo,Bar\n1,2\n"


class Receiver:
    """A local webhook: records each POST's JSON body."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(204)
                self.end_headers()
                with receiver._arrived:
                    receiver.bodies.append(json.loads(body))
                    receiver._arrived.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def about(self, job_id: str) -> list[Any]:
        """The bodies posted about one job so far."""
        with self._arrived:
            return [b for b in self.bodies if b.get("job", {}).get("job_id") == job_id]

    def wait_for(self, job_id: str, count: int = 1, timeout: float = 60) -> list[Any]:
        """The bodies about `job_id` once `count` have arrived (the automation is the whole
        Prefect server's: other stacks' jobs may be posted too)."""
        with self._arrived:
            arrived = self._arrived.wait_for(lambda: len(self.about(job_id)) >= count, timeout)
            assert arrived, f"fewer than {count} posts about {job_id} arrived: {self.bodies}"
            return self.about(job_id)

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture
def stack(shared_stack: RunningStack) -> RunningStack:
    return shared_stack


@pytest.fixture
def client(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api, timeout=30) as http:
        yield http


def catalogue(path: Path, rows: int, prefix: str) -> Path:
    return write_xlsx(
        path,
        [["SKU", "Name", "Price"]] + [[f"{prefix}-{i:05d}", f"Item {i}", 1.5] for i in range(rows)],
    )


def upload(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        answer = client.post("/api/excel/import", files={"file": (path.name, f)})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


def apply_automations(stack: RunningStack, webhook_url: str | None) -> str:
    """`importer automations apply` as the stack's operator runs it, posting to `webhook_url`
    (none: every automation disabled)."""
    env = {k: v for k, v in stack.env.items() if k != "IMPORTER_NOTIFY_WEBHOOK_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "automations", "apply"],
        cwd=ROOT,
        env=env | ({"IMPORTER_NOTIFY_WEBHOOK_URL": webhook_url} if webhook_url else {}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def events(
    stack: RunningStack, *, resource: list[str] | None = None, any_of: str = ""
) -> list[Any]:
    """Importer events Prefect's event API lists, oldest first."""
    query: dict[str, Any] = {"event": {"prefix": ["importer."]}}
    if resource:
        query["resource"] = {"id": resource}
    if any_of:
        query["any_resource"] = {"id": [any_of]}
    answer = httpx.post(
        f"{stack.prefect_api}/events/filter",
        json={"filter": {**query, "order": "ASC"}, "limit": 50},
        timeout=30,
    )
    answer.raise_for_status()
    return list(answer.json()["events"])


def events_once(
    stack: RunningStack, jobs: list[str], expected: int, timeout: float = 60
) -> list[Any]:
    """The jobs' events once `expected` of them are stored (Prefect writes them in batches)."""
    ids = [f"importer.job.{j}" for j in jobs]
    deadline = time.monotonic() + timeout
    while len(found := events(stack, resource=ids)) < expected:
        assert time.monotonic() < deadline, f"only {[e['event'] for e in found]} after {timeout} s"
        time.sleep(0.5)
    return found


@pytest.fixture
def applied(stack: RunningStack, receiver: Receiver) -> Iterator[str]:
    """The automations applied with the receiver's URL; applied again without one after
    the test (all disabled), so the shared Prefect server posts nothing more."""
    try:
        yield apply_automations(stack, receiver.url)
    finally:
        apply_automations(stack, None)


def test_an_applied_automation_posts_a_failed_import_to_the_webhook_not_a_completed_one(
    stack: RunningStack, client: httpx.Client, receiver: Receiver, applied: str, tmp_path: Path
) -> None:
    first = applied
    assert "'importer: import failed' on importer.import.failed: enabled (created)" in first
    assert "'importer: import completed' on importer.import.completed: disabled" in first
    # Idempotent: the same automations, updated in place.
    again = apply_automations(stack, receiver.url)
    declared = len(load_spec().automation)
    assert again.count("(updated)") == declared and "(created)" not in again

    completed = upload(client, catalogue(tmp_path / "fine.xlsx", 40, "W"))
    assert wait_for(client, completed, ENDED)["status"] == "completed"
    bad = tmp_path / "no-sku.csv"
    bad.write_bytes(NO_SKU)
    failed = upload(client, bad)
    job = wait_for(client, failed, ENDED)
    assert job["status"] == "failed" and job["error"]

    (post,) = receiver.wait_for(failed)
    assert post["event"] == "importer.import.failed"
    assert post["job"]["error"] == job["error"]
    assert post["job"]["page_url"].endswith(f"/?job={failed}")
    # The completed import's event reached Prefect before the failure did, and was not posted.
    told = [e["event"] for e in events_once(stack, [completed], 2)]
    assert told == ["importer.import.started", "importer.import.completed"]
    assert receiver.about(completed) == [] and receiver.about(failed) == [post]


def test_prefects_event_api_lists_each_outcome_once_with_the_counts(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    good = upload(client, catalogue(tmp_path / "counted.xlsx", 250, "C"))
    done = wait_for(client, good, ENDED)
    bad = tmp_path / "broken.csv"
    bad.write_bytes(NO_SKU + b"3,4\n")
    failed = upload(client, bad)
    broken = wait_for(client, failed, ENDED)
    assert (done["status"], broken["status"]) == ("completed", "failed")

    found = events_once(stack, [good, failed], 4)
    by_job = {
        job: [e for e in found if e["resource"]["prefect.resource.id"] == f"importer.job.{job}"]
        for job in (good, failed)
    }
    assert [e["event"] for e in by_job[good]] == [
        "importer.import.started",
        "importer.import.completed",
    ]
    assert [e["event"] for e in by_job[failed]] == [
        "importer.import.started",
        "importer.import.failed",
    ]
    payload = by_job[good][-1]["payload"]
    assert (payload["total_rows"], payload["processed_rows"], payload["created"]) == (250, 250, 250)
    assert (payload["updated"], payload["unchanged"], payload["failed"]) == (0, 0, 0)
    assert payload["rows_per_s"] > 0 and payload["elapsed_s"] > 0
    assert payload["job_url"] == f"{stack.api}/api/excel/import/{good}/progress"
    assert by_job[failed][-1]["payload"]["error"] == broken["error"]
    assert by_job[good][-1]["resource"]["prefect.resource.name"] == "counted.xlsx"

    # The run's page in the Prefect UI asks for the events that name its flow run.
    run_id = done["flow_run_id"]
    run = final_flow_run(stack.prefect_api, run_id)  # the summary is attached as the run ends
    assert run.state is not None and run.state.is_completed(), run.state
    on_run_page = events(stack, any_of=f"prefect.flow-run.{run_id}")
    assert [e["event"] for e in on_run_page] == [
        "importer.import.started",
        "importer.import.completed",
    ]
    artifacts = httpx.post(
        f"{stack.prefect_api}/artifacts/filter",
        json={
            "artifacts": {"key": {"any_": ["import-summary"]}},
            "flow_runs": {"id": {"any_": [run_id]}},
        },
        timeout=30,
    ).json()
    assert any(f"/?job={good})" in (a["description"] or "") for a in artifacts), artifacts


def test_a_cancel_through_the_api_is_told_as_cancelled_whether_running_or_waiting(
    stack: RunningStack, client: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = catalogue(tmp_path / "stopped.xlsx", 2000, "S")
    with import_gate(stack.hold_dir, path.name, after_rows=300) as gate:
        running = upload(client, path)
        with held(gate):
            assert client.post(f"/api/excel/import/{running}/cancel").status_code == 202
    stopped = wait_for(client, running, ENDED)
    assert stopped["status"] == "cancelled"

    # A job that never got a run: its cancel is the API's own transition, not a run's.
    monkeypatch.setenv("IMPORTER_DATA_DIR", str(stack.data_dir))
    get_settings.cache_clear()
    reset_engines()
    try:
        with session_scope() as session:
            waiting = job_for_path(
                session,
                catalogue(tmp_path / "waiting.xlsx", 5, "P"),
                source=JobSource.UPLOAD,
                options=JobOptions(),
            )
            assert waiting.status is JobStatus.PENDING
            never_ran = str(waiting.id)
    finally:
        reset_engines()
        get_settings.cache_clear()
    assert client.post(f"/api/excel/import/{never_ran}/cancel").status_code == 202

    found = events_once(stack, [running, never_ran], 3)
    told = [(e["resource"]["prefect.resource.id"], e["event"]) for e in found]
    assert told == [
        (f"importer.job.{running}", "importer.import.started"),
        (f"importer.job.{running}", "importer.import.cancelled"),
        (f"importer.job.{never_ran}", "importer.import.cancelled"),
    ]
    assert found[1]["payload"]["processed_rows"] == stopped["processed_rows"] > 0
    assert found[2]["payload"]["error"] == "the import was cancelled before it started"


def test_a_file_the_cli_refuses_is_told_before_the_command_exits(
    stack: RunningStack, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.xlsx"
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "import", str(missing), "--json"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "failed"
    (told,) = events_once(stack, [report["job_id"]], 1)
    assert told["event"] == "importer.import.failed"
    assert told["resource"]["importer.source"] == "cli"
    assert told["payload"]["error"] == report["error"]


def test_an_undo_through_the_api_tells_prefect_the_import_was_undone(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    imported = upload(client, catalogue(tmp_path / "undone.xlsx", 120, "U"))
    assert wait_for(client, imported, ENDED)["status"] == "completed"
    asked = client.post(f"/api/excel/import/{imported}/undo")
    assert asked.status_code == 202, asked.text
    undo_id = str(asked.json()["job_id"])
    undo = wait_for(client, undo_id, ENDED)
    assert (undo["status"], undo["deleted"]) == ("completed", 120)
    assert client.get(f"/api/excel/import/{imported}/progress").json()["status"] == "undone"

    # The undo's run, on a worker, tells both jobs' transitions (the last two commit
    # together, so either may come first).
    found = events_once(stack, [imported, undo_id], 5)
    by_job = {
        job: [e for e in found if e["resource"]["prefect.resource.id"] == f"importer.job.{job}"]
        for job in (imported, undo_id)
    }
    assert [e["event"] for e in by_job[imported]] == [
        "importer.import.started",
        "importer.import.completed",
        "importer.import.undone",
    ]
    assert [e["event"] for e in by_job[undo_id]] == [
        "importer.import.started",
        "importer.import.completed",
    ]
    undone = by_job[imported][-1]
    assert undone["resource"]["importer.status"] == "undone"
    assert (undone["payload"]["status"], undone["payload"]["created"]) == ("undone", 120)
    assert by_job[undo_id][-1]["resource"]["importer.source"] == "undo"
