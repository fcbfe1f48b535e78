"""POST .../cancel and .../retry: which statuses allow them and what they change."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import get_trigger
from db.models import JobSource, JobStatus, utcnow
from db.session import session_scope
from itemsheet.jobs.importing import JobOptions
from itemsheet.jobs.uploads import job_for_path
from itemsheet.jobs.views import CANCELLED_BEFORE_START, removed_reason
from orchestration.dispatch import dispatch_once
from settings import get_settings
from tests.api.helpers import UNAVAILABLE, FakeTrigger, UnavailableTrigger, add_job, read_job

TERMINAL = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]


def cancel(client: TestClient, job_id: uuid.UUID) -> tuple[int, dict[str, object]]:
    response = client.post(f"/api/excel/import/{job_id}/cancel")
    return response.status_code, response.json()


def retry(client: TestClient, job_id: uuid.UUID) -> tuple[int, dict[str, object]]:
    response = client.post(f"/api/excel/import/{job_id}/retry")
    return response.status_code, response.json()


def test_cancelling_a_pending_job_without_a_run_ends_it_at_once(
    client: TestClient, trigger: FakeTrigger
) -> None:
    job_id = add_job(status=JobStatus.PENDING)

    code, body = cancel(client, job_id)

    assert code == 202
    assert (body["status"], body["cancel_requested"]) == ("cancelled", True)
    job = read_job(job_id)
    assert (job.status, job.cancel_requested, job.error) == (
        "cancelled",
        True,
        CANCELLED_BEFORE_START,
    )
    assert job.finished_at is not None
    assert trigger.cancelled == []


def test_cancelling_a_pending_job_with_a_queued_run_ends_it_and_cancels_the_run(
    client: TestClient, trigger: FakeTrigger
) -> None:
    run = uuid.uuid4()
    job_id = add_job(status=JobStatus.PENDING, flow_run_id=run)

    code, body = cancel(client, job_id)

    assert (code, body["status"]) == (202, "cancelled")
    assert trigger.cancelled == [run]


def test_cancelling_a_processing_job_asks_the_flow_to_stop_between_batches(
    client: TestClient, trigger: FakeTrigger
) -> None:
    run = uuid.uuid4()
    job_id = add_job(status=JobStatus.PROCESSING, flow_run_id=run, started_at=utcnow())

    code, body = cancel(client, job_id)

    assert code == 202
    assert (body["status"], body["cancel_requested"]) == ("processing", True)
    job = read_job(job_id)
    assert (job.status, job.cancel_requested) == ("processing", True)
    assert trigger.cancelled == [run]


def test_a_cancel_request_is_kept_when_prefect_cannot_be_reached(
    app: FastAPI, client: TestClient
) -> None:
    app.dependency_overrides[get_trigger] = lambda: UnavailableTrigger()
    job_id = add_job(status=JobStatus.PROCESSING, flow_run_id=uuid.uuid4())

    code, _ = cancel(client, job_id)

    assert code == 202
    assert read_job(job_id).cancel_requested is True


@pytest.mark.parametrize("ended", TERMINAL)
def test_cancelling_an_ended_job_is_409(
    client: TestClient, trigger: FakeTrigger, ended: JobStatus
) -> None:
    job_id = add_job(status=ended, flow_run_id=uuid.uuid4())

    code, body = cancel(client, job_id)

    assert code == 409
    assert body == {
        "detail": f"the import has already ended as {ended}; there is nothing to cancel"
    }
    assert read_job(job_id).cancel_requested is False
    assert trigger.cancelled == []


def test_cancelling_an_unknown_job_is_404(client: TestClient) -> None:
    assert cancel(client, uuid.uuid4())[0] == 404


@pytest.mark.parametrize("ended", [JobStatus.FAILED, JobStatus.CANCELLED])
def test_retrying_a_failed_or_cancelled_job_reopens_it_and_starts_a_new_run(
    client: TestClient, trigger: FakeTrigger, ended: JobStatus
) -> None:
    job_id = add_job(
        status=ended,
        filename="spring.xlsx",
        attempt=2,
        last_batch=3,
        cancel_requested=True,
        error="the import stopped unexpectedly",
        flow_run_id=uuid.uuid4(),
        started_at=utcnow(),
        finished_at=utcnow(),
    )

    code, body = retry(client, job_id)

    assert code == 202
    # The answer comes before Prefect is asked; the new run follows it at once.
    assert (body["status"], body["error"], body["flow_run_id"]) == ("pending", None, None)
    [(retried_id, filename, run)] = trigger.started
    assert (retried_id, filename) == (job_id, "spring.xlsx")
    # A key of its own: Prefect must not hand back the job's earlier, cancelled run.
    [key] = trigger.keys
    assert key.startswith(f"{job_id}-retry-")
    job = read_job(job_id)
    assert (job.status, job.cancel_requested, job.error, job.finished_at) == (
        "pending",
        False,
        None,
        None,
    )
    assert (job.flow_run_id, job.last_batch) == (run, 3)


@pytest.mark.parametrize("state", [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.COMPLETED])
def test_retrying_a_job_that_did_not_fail_or_was_not_cancelled_is_409(
    client: TestClient, trigger: FakeTrigger, state: JobStatus
) -> None:
    job_id = add_job(status=state)

    code, body = retry(client, job_id)

    assert code == 409
    assert body == {
        "detail": f"only a failed or cancelled import can be retried; this one is {state}"
    }
    assert read_job(job_id).status == state
    assert trigger.started == []


def test_retrying_a_job_whose_file_retention_removed_is_409_with_the_reason(
    client: TestClient, trigger: FakeTrigger
) -> None:
    removed_at = datetime(2026, 3, 1, 3, 30, tzinfo=UTC)
    job_id = add_job(
        status=JobStatus.FAILED,
        error="earlier reason",
        finished_at=utcnow(),
        files_removed_at=removed_at,
    )

    code, body = retry(client, job_id)

    assert code == 409
    assert body == {"detail": removed_reason(removed_at)}
    assert "2026-03-01" in body["detail"]
    assert (read_job(job_id).status, read_job(job_id).error) == ("failed", "earlier reason")
    assert trigger.started == []


def test_retrying_an_unknown_job_is_404(client: TestClient) -> None:
    assert retry(client, uuid.uuid4())[0] == 404


def test_retry_while_prefect_is_unavailable_waits_pending_and_starts_once_it_answers(
    app: FastAPI, client: TestClient, trigger: FakeTrigger
) -> None:
    app.dependency_overrides[get_trigger] = lambda: UnavailableTrigger()
    job_id = add_job(status=JobStatus.FAILED, error="earlier reason")

    code, body = retry(client, job_id)

    assert (code, body["status"]) == (202, "pending")
    job = read_job(job_id)
    assert (job.status, job.error, job.flow_run_id) == ("pending", None, None)
    assert job.waiting_for == UNAVAILABLE
    assert client.get(f"/api/excel/import/{job_id}/progress").json()["waiting_for"] == UNAVAILABLE

    app.dependency_overrides[get_trigger] = lambda: trigger
    asyncio.run(dispatch_once(trigger, get_settings()))
    [(_, _, run)] = trigger.started
    job = read_job(job_id)
    assert (job.status, job.flow_run_id, job.waiting_for) == ("pending", run, None)


def test_a_refused_upload_keeps_no_file_and_cannot_be_retried(
    client: TestClient, tmp_path: Path, upload_limit: int
) -> None:
    big = tmp_path / "big.csv"
    big.write_bytes(b"SKU,Name\n" + b"A,b\n" * upload_limit)
    with session_scope() as session:
        refused = job_for_path(session, big, source=JobSource.CLI, options=JobOptions())
        assert refused.status is JobStatus.FAILED and refused.file_uri == ""
        job_id = refused.id

    response = client.post(f"/api/excel/import/{job_id}/retry")

    assert response.status_code == 409
    assert response.json()["detail"].startswith("this import was refused before its file")
    assert read_job(job_id).status is JobStatus.FAILED
