"""POST .../undo: which imports may be undone, the undo job it creates, 409 with a reason."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from db.models import JobSource, JobStatus, utcnow
from tests.api.helpers import FakeTrigger, add_job, read_job


def undo(client: TestClient, job_id: uuid.UUID, **params: str) -> tuple[int, dict[str, object]]:
    response = client.post(f"/api/excel/import/{job_id}/undo", params=params)
    return response.status_code, response.json()


def ended(status: JobStatus = JobStatus.COMPLETED, **fields: object) -> uuid.UUID:
    return add_job(status=status, finished_at=utcnow(), columns=["name", "price"], **fields)


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_undo_of_an_ended_import_creates_an_undo_job_run_by_the_undo_deployment(
    client: TestClient, trigger: FakeTrigger, status: JobStatus
) -> None:
    import_id = ended(status)
    code, body = undo(client, import_id)
    assert code == 202, body
    assert (body["source"], body["status"], body["undo_of"]) == ("undo", "pending", str(import_id))
    undo_id = uuid.UUID(str(body["job_id"]))
    assert trigger.undos == [undo_id]
    job = read_job(undo_id)
    assert (job.source, job.undo_of, job.undo_force) == (JobSource.UNDO, import_id, False)
    assert read_job(import_id).status is status  # `undone` only once the undo completes


def test_force_is_kept_on_the_undo_job(client: TestClient) -> None:
    code, body = undo(client, ended(), force="true")
    assert code == 202
    assert read_job(uuid.UUID(str(body["job_id"]))).undo_force is True


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": JobStatus.PROCESSING}, "still running"),
        ({"status": JobStatus.PENDING}, "still running"),
        ({"status": JobStatus.AWAITING_REVIEW}, "reject it instead"),
        ({"status": JobStatus.UNDONE}, "already been undone"),
        ({"dry_run": True}, "dry run wrote nothing"),
        ({"source": JobSource.UNDO}, "itself an undo"),
        ({"finished_at": utcnow() - timedelta(days=31)}, "IMPORTER_UNDO_DAYS"),
        ({"undo_removed_at": utcnow()}, "can no longer be undone"),
    ],
)
def test_an_import_that_cannot_be_undone_gets_409_with_one_sentence(
    client: TestClient, trigger: FakeTrigger, fields: dict[str, object], reason: str
) -> None:
    values: dict[str, object] = {"status": JobStatus.COMPLETED, "finished_at": utcnow()}
    import_id = add_job(**(values | fields))
    code, body = undo(client, import_id)
    assert code == 409, body
    detail = str(body["detail"])
    assert reason in detail and "\n" not in detail and detail.count(". ") == 0
    assert trigger.undos == []


def test_a_second_undo_while_one_is_under_way_or_stopped_is_refused_naming_it(
    client: TestClient,
) -> None:
    import_id = ended()
    _, body = undo(client, import_id)
    first = str(body["job_id"])
    code, again = undo(client, import_id)
    assert code == 409 and first in str(again["detail"]) and "under way" in str(again["detail"])
    # A stopped undo is retried, not started afresh (what it did is not undone twice).
    client.post(f"/api/excel/import/{first}/cancel")
    code, again = undo(client, import_id)
    assert code == 409 and "retry that job" in str(again["detail"])
    # And the import itself cannot run again while its undo is under way.
    assert client.post(f"/api/excel/import/{first}/retry").status_code == 202
    failed = ended(JobStatus.FAILED)
    undo(client, failed)
    retried = client.post(f"/api/excel/import/{failed}/retry")
    assert retried.status_code == 409 and "undo" in retried.json()["detail"]


def test_undo_of_an_unknown_import_is_404(client: TestClient) -> None:
    code, body = undo(client, uuid.uuid4())
    assert code == 404 and "no import job" in str(body["detail"])
