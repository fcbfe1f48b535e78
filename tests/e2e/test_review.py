"""Review before writing on the real stack: a suspended Prefect run that holds nothing,
answered through the API or as the Prefect UI's "Resume" does, across a restart."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.stack import (
    SHARED_REVIEW_HOLD_S,
    RunningStack,
    final_flow_run,
    new_name_prefix,
    running_stack,
    wait_for,
)
from orchestration.names import REIMPORT_DEPLOYMENT
from settings import Settings
from tests.contract.workbooks import write_csv, write_xlsx
from tests.e2e.test_events import events_once

pytestmark = pytest.mark.stack

WAIT_S = 180  # for a run to start, preview and suspend on a busy 2-core machine


def catalogue(n: int, *, prefix: str = "R", price: float = 2.0) -> list[list[Any]]:
    return [["SKU", "Name", "Price"]] + [
        [f"{prefix}-{i:05d}", f"Item {i}", price] for i in range(n)
    ]


# Imports the shared stack's worker runs at once (the default): a review that held its
# slot would block the others once this many wait.
WORKER_LIMIT = Settings.model_fields["worker_limit"].default


@pytest.fixture
def stack(shared_stack: RunningStack) -> RunningStack:
    return shared_stack


@pytest.fixture
def client(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api, timeout=60) as http:
        yield http


def upload(client: httpx.Client, path: Path, **form: str) -> str:
    with path.open("rb") as f:
        response = client.post("/api/excel/import", files={"file": (path.name, f)}, data=form)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def items(data_dir: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "importer.db") as db:
        return {r[0]: r[1:] for r in db.execute("SELECT sku, name, price FROM item")}


def flow_run(stack: RunningStack, run_id: str) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(stack.prefect_api) as prefect:
        return prefect.read_flow_run(uuid.UUID(run_id))


def process_gone(infrastructure_pid: str | None, timeout: float = 30) -> bool:
    """The process Prefect recorded for a run has exited."""
    assert infrastructure_pid, "the run recorded no process"
    pid = int(infrastructure_pid.rsplit(":", 1)[-1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def suspended(stack: RunningStack, run_id: str) -> Any:
    """The run, once it has suspended: it waits paused in its process for its hold
    first, and leaves that pause (running for a moment) to suspend."""
    deadline = time.monotonic() + SHARED_REVIEW_HOLD_S + 60
    while (run := flow_run(stack, run_id)).state.name != "Suspended":
        assert run.state.type.value in ("PAUSED", "RUNNING"), run.state
        assert time.monotonic() < deadline, f"the run did not suspend: {run.state}"
        time.sleep(0.2)
    return run


def test_a_review_answered_at_once_carries_on_in_the_process_that_previewed_it(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    job_id = upload(
        client, write_csv(tmp_path / "at-once.csv", catalogue(20, prefix="AO")), review="true"
    )
    run_id = wait_for(client, job_id, {"awaiting_review"}, WAIT_S)["flow_run_id"]
    held = flow_run(stack, run_id)
    # Paused, not suspended: its process waits for the answer, and the form is in Prefect.
    assert (held.state.type.value, held.state.name) == ("PAUSED", "Paused")
    assert held.state.state_details.run_input_keyset
    assert not process_gone(held.infrastructure_pid, timeout=0.5)

    assert client.post(f"/api/excel/import/{job_id}/confirm").status_code == 202
    done = wait_for(client, job_id, {"completed", "failed"}, WAIT_S)

    assert (done["status"], done["created"], done["flow_run_id"]) == ("completed", 20, run_id)
    assert done["retries"] == 0  # the run the answer carried on is no second attempt
    ended = final_flow_run(stack.prefect_api, run_id)
    assert ended.state.type.value == "COMPLETED"
    # The same process previewed and wrote it: the run never suspended, nor started anew.
    assert ended.infrastructure_pid == held.infrastructure_pid


def test_a_review_waits_suspended_holding_no_process_or_slot_and_confirm_writes_its_preview(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    wait_for(
        client,
        upload(client, write_xlsx(tmp_path / "review-base.xlsx", catalogue(300))),
        {"completed"},
        WAIT_S,
    )
    changed = catalogue(300, price=2.5)[:201] + [["R-NEW-1", "New", 1], ["R-NEW-2", "New", 2]]
    job_id = upload(client, write_xlsx(tmp_path / "review-prices.xlsx", changed), review="true")
    # As many reviews wait as the worker runs imports at once.
    others = [
        upload(
            client,
            write_csv(tmp_path / f"waits-{n}.csv", catalogue(3, prefix=f"RW{n}")),
            review="true",
        )
        for n in range(1, WORKER_LIMIT)
    ]

    waiting = wait_for(client, job_id, {"awaiting_review"}, WAIT_S)
    preview = client.get(f"/api/excel/import/{job_id}/preview").json()
    assert preview["counts"] == {
        "total_rows": 202,
        "created": 2,
        "updated": 200,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert preview["changes"][0] == {
        "row": 2,
        "sku": "R-00000",
        "action": "update",
        "fields": {"price": ["2", "2.5"]},
    }
    assert len(preview["changes"]) == 50
    assert items(stack.data_dir)["R-00000"][1] == 2  # nothing written

    # In Prefect the run is suspended once its hold is over, and its process has exited.
    run = suspended(stack, waiting["flow_run_id"])
    assert process_gone(run.infrastructure_pid)
    # Its slots all taken by waiting reviews, were they held, the worker still runs another.
    for waiting_too in others:
        wait_for(client, waiting_too, {"awaiting_review"}, WAIT_S)
    other = upload(client, write_csv(tmp_path / "other.csv", catalogue(5, prefix="O")))
    assert wait_for(client, other, {"completed"}, WAIT_S)["created"] == 5
    assert client.get(f"/api/excel/import/{job_id}/progress").json()["status"] == "awaiting_review"
    for waiting_too in others:
        assert client.post(f"/api/excel/import/{waiting_too}/reject").status_code == 202

    assert client.post(f"/api/excel/import/{job_id}/confirm").status_code == 202
    done = wait_for(client, job_id, {"completed", "failed"}, WAIT_S)

    assert {k: done[k] for k in preview["counts"]} == preview["counts"]
    assert done["status"] == "completed" and done["flow_run_id"] == waiting["flow_run_id"]
    # Prefect heard each step: the preview began, awaited its review, then the import.
    said = [e["event"] for e in events_once(stack, [job_id], 4)]
    assert said == [
        "importer.import.started",
        "importer.import.awaiting-review",
        "importer.import.started",
        "importer.import.completed",
    ]
    assert items(stack.data_dir)["R-00000"][1] == 2.5
    assert final_flow_run(stack.prefect_api, done["flow_run_id"]).state.type.value == "COMPLETED"


def test_reviews_held_in_every_worker_slot_give_one_back_to_an_import_that_waits(
    tmp_path: Path, prefect_server: str
) -> None:
    # A stack of its own whose reviews are held far longer than any wait here: an import
    # that waited for a held review to end its hold would not complete in time.
    with (
        running_stack(tmp_path / "var", prefect_api=prefect_server, review_hold_s="3600") as own,
        httpx.Client(base_url=own.api, timeout=60) as client,
    ):
        reviews = [
            upload(
                client,
                write_csv(tmp_path / f"held-{n}.csv", catalogue(3, prefix=f"H{n}")),
                review="true",
            )
            for n in range(WORKER_LIMIT)
        ]
        runs = [wait_for(client, j, {"awaiting_review"}, WAIT_S)["flow_run_id"] for j in reviews]
        assert all(flow_run(own, r).state.name == "Paused" for r in runs)  # held, every slot

        other = upload(client, write_csv(tmp_path / "waits.csv", catalogue(5, prefix="W")))
        assert wait_for(client, other, {"completed"}, WAIT_S)["created"] == 5

        # One review gave its slot back: its run suspended and its process exited; the
        # reviews still wait for their answer, and one confirmed now is written.
        names = [flow_run(own, r).state.name for r in runs]
        assert "Suspended" in names, names
        given = runs[names.index("Suspended")]
        assert process_gone(flow_run(own, given).infrastructure_pid)
        for job_id in reviews:
            assert client.get(f"/api/excel/import/{job_id}/progress").json()["status"] == (
                "awaiting_review"
            )
        confirmed = reviews[names.index("Suspended")]
        assert client.post(f"/api/excel/import/{confirmed}/confirm").status_code == 202
        assert wait_for(client, confirmed, {"completed", "failed"}, WAIT_S)["created"] == 3


def test_reject_cancels_the_job_and_its_run_and_writes_nothing(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    job_id = upload(
        client, write_csv(tmp_path / "no.csv", catalogue(20, prefix="NO")), review="true"
    )
    run_id = wait_for(client, job_id, {"awaiting_review"}, WAIT_S)["flow_run_id"]

    response = client.post(f"/api/excel/import/{job_id}/reject")

    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert final_flow_run(stack.prefect_api, run_id).state.type.value == "CANCELLED"
    assert not any(sku.startswith("NO-") for sku in items(stack.data_dir))


def test_unknown_headers_wait_for_a_mapping_given_at_confirm_which_is_then_saved(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    rows = [
        ["Artikelnummer", "Bezeichnung", "Preis"],
        ["DE-1", "Schraube", 0.1],
        ["DE-2", "Mutter", 0.2],
    ]
    job_id = upload(client, write_xlsx(tmp_path / "de.xlsx", rows), review="true")
    wait_for(client, job_id, {"awaiting_review"}, WAIT_S)
    preview = client.get(f"/api/excel/import/{job_id}/preview").json()
    assert preview["problem"].startswith("no header row with an SKU column was found")
    assert [c["header"] for c in preview["columns"]] == ["Artikelnummer", "Bezeichnung", "Preis"]

    mapping = {"Artikelnummer": "sku", "Bezeichnung": "name", "Preis": "price"}
    assert (
        client.post(f"/api/excel/import/{job_id}/confirm", json={"mapping": mapping}).status_code
        == 202
    )
    done = wait_for(client, job_id, {"completed", "failed"}, WAIT_S)

    assert (done["status"], done["created"]) == ("completed", 2)
    assert items(stack.data_dir)["DE-2"] == ("Mutter", 0.2)
    saved = [m for m in client.get("/api/excel/mappings").json() if m["job_id"] == job_id]
    assert [m["columns"] for m in saved] == [
        {"artikelnummer": "sku", "bezeichnung": "name", "preis": "price"}
    ]


def test_a_review_is_confirmed_from_prefect_as_its_resume_button_does(
    stack: RunningStack, client: httpx.Client, tmp_path: Path
) -> None:
    from prefect.client.orchestration import PrefectClient

    job_id = upload(
        client, write_csv(tmp_path / "ui.csv", catalogue(3, prefix="UI")), review="true"
    )
    run_id = wait_for(client, job_id, {"awaiting_review"}, WAIT_S)["flow_run_id"]

    async def resume() -> None:
        async with PrefectClient(stack.prefect_api) as prefect:
            # The UI's form, left as it is: its defaults confirm the import.
            result = await prefect.resume_flow_run(uuid.UUID(run_id), run_input={})
            assert result.status.value == "ACCEPT", result

    asyncio.run(resume())

    done = wait_for(client, job_id, {"completed", "failed"}, WAIT_S)
    assert (done["status"], done["created"]) == ("completed", 3)


def age_review(data_dir: Path, job_id: str, hours: float) -> None:
    """Move a waiting review's clock back, as if `hours` had passed (the stack is stopped)."""
    then = (datetime.now(UTC) - timedelta(hours=hours)).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(data_dir / "importer.db") as db:
        db.execute(
            "UPDATE import_job SET review_ready_at = ?, updated_at = ? WHERE id = ?",
            (then, then, uuid.UUID(job_id).hex),
        )


def test_reviews_survive_a_restart_of_the_stack_and_an_unanswered_one_expires(
    tmp_path: Path, prefect_server: str
) -> None:
    # A stack of its own (it is restarted), on the shared Prefect server: the same importer
    # (name prefix) before and after.
    data_dir = tmp_path / "var"
    prefix = new_name_prefix()
    with (
        running_stack(
            data_dir, prefect_api=prefect_server, name_prefix=prefix, review_hold_s="0"
        ) as first,
        httpx.Client(base_url=first.api, timeout=60) as client,
    ):
        kept = upload(
            client, write_csv(tmp_path / "kept.csv", catalogue(4, prefix="K")), review="true"
        )
        late = upload(
            client, write_csv(tmp_path / "late.csv", catalogue(4, prefix="L")), review="true"
        )
        for job_id in (kept, late):
            run_id = wait_for(client, job_id, {"awaiting_review"}, WAIT_S)["flow_run_id"]
            # Stopped once the run's process has exited (a stop while it exits reports
            # the run Crashed, which the review outlives: see the recovery rules).
            assert process_gone(flow_run(first, run_id).infrastructure_pid)
    age_review(data_dir, late, hours=25)

    with (
        running_stack(
            data_dir,
            prefect_api=prefect_server,
            name_prefix=prefix,
            reconcile_interval_s="1",
            review_hold_s="0",
        ) as second,
        httpx.Client(base_url=second.api, timeout=60) as client,
    ):
        assert client.get(f"/api/excel/import/{kept}/preview").json()["counts"]["created"] == 4
        assert client.post(f"/api/excel/import/{kept}/confirm").status_code == 202
        assert wait_for(client, kept, {"completed", "failed"}, WAIT_S)["status"] == "completed"

        expired = wait_for(client, late, {"cancelled"}, 60)
        assert expired["error"] == (
            "nobody confirmed the import within 24 h of its preview; nothing was written"
        )
        assert final_flow_run(second.prefect_api, expired["flow_run_id"]).state.type.value == (
            "CANCELLED"
        )
    assert sorted(items(data_dir)) == ["K-00000", "K-00001", "K-00002", "K-00003"]


def test_a_scheduled_reimport_of_swapped_columns_waits_tells_prefect_and_a_confirm_writes_it(
    stack: RunningStack, client: httpx.Client
) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    feeds = stack.data_dir.parent / "feeds"
    header = ["SKU", "Name", "Price", "Qty"]
    feed = write_xlsx(
        feeds / "guard-feed.xlsx",
        [header] + [[f"GS-{i:03d}", f"Item {i}", 12, 3] for i in range(40)],
    )
    # The supplier's next file has its price and stock columns swapped.
    swapped = write_xlsx(
        feeds / "guard-swapped.xlsx",
        [header] + [[f"GS-{i:03d}", f"Item {i}", 3, 12] for i in range(40)],
    )
    deployment = stack.deployment("reimport-items", REIMPORT_DEPLOYMENT)
    with temporary_settings({PREFECT_API_URL: stack.prefect_api}):
        for source in (feed, swapped):
            run = run_deployment(deployment, parameters={"source": str(source)}, timeout=WAIT_S)
            assert run.state is not None and run.state.is_completed(), run.state
    history = client.get("/api/excel/imports", params={"source": "schedule"}).json()
    by_name = {j["filename"]: j["job_id"] for j in history["items"]}
    first, job_id = by_name["guard-feed.xlsx"], by_name["guard-swapped.xlsx"]
    assert wait_for(client, first, {"completed"}, WAIT_S)["created"] == 40

    waiting = wait_for(client, job_id, {"awaiting_review"}, WAIT_S)
    [trip] = waiting["guard"]["tripped"]
    assert trip["rule"] == "price_change"
    assert trip["sentence"] == (
        "40 of 40 updated prices (100 %) would change by more than 50 %;"
        " e.g. GS-000 12.00 -> 3.00, GS-001 12.00 -> 3.00, GS-002 12.00 -> 3.00"
    )
    assert items(stack.data_dir)["GS-000"][1] == 12  # nothing written
    preview = client.get(f"/api/excel/import/{job_id}/preview").json()
    assert preview["guard"][0]["sentence"] == trip["sentence"]
    assert preview["chart"]["prices"]["items"] == 40

    # Prefect heard why it waits: an automation can tell someone.
    said = events_once(stack, [job_id], 2)
    assert [e["event"] for e in said] == [
        "importer.import.started",
        "importer.import.awaiting-review",
    ]
    assert said[-1]["payload"]["guard"]["tripped"][0]["sentence"] == trip["sentence"]
    assert said[-1]["resource"]["importer.source"] == "schedule"

    assert client.post(f"/api/excel/import/{job_id}/confirm").status_code == 202
    done = wait_for(client, job_id, {"completed", "failed"}, WAIT_S)

    assert (done["status"], done["updated"]) == ("completed", 40)
    assert items(stack.data_dir)["GS-000"][1] == 3
