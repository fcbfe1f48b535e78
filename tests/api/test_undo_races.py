"""An undo and a review's answer through the API, in every order: an import is undone
only once it has ended, and is not confirmed while its undo is under way."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from db.models import JobSource, JobStatus
from tests.api.helpers import FakeTrigger, add_job, read_job
from tests.api.test_review import waiting_job


def post(client: TestClient, job_id: uuid.UUID, action: str, **body: object) -> tuple[int, str]:
    response = client.post(f"/api/excel/import/{job_id}/{action}", json=body or None)
    return response.status_code, str(response.json().get("detail", ""))


def test_undo_then_confirm_an_import_awaiting_review_refuses_the_undo_not_the_confirm(
    client: TestClient, trigger: FakeTrigger
) -> None:
    job_id = waiting_job(run=uuid.uuid4())
    code, detail = post(client, job_id, "undo")
    assert code == 409 and "reject it instead" in detail
    assert "\n" not in detail and detail.count(". ") == 0
    assert trigger.undos == [] and trigger.started == []
    code, _ = post(client, job_id, "confirm")
    assert code == 202 and len(trigger.resumed) == 1
    assert read_job(job_id).status is JobStatus.PENDING


def test_confirm_then_undo_refuses_the_undo_while_the_import_runs(
    client: TestClient, trigger: FakeTrigger
) -> None:
    job_id = waiting_job(run=uuid.uuid4())
    assert post(client, job_id, "confirm")[0] == 202
    code, detail = post(client, job_id, "undo")
    assert code == 409 and "still running" in detail
    assert trigger.undos == [] and read_job(job_id).status is JobStatus.PENDING


@pytest.mark.parametrize("undo_status", [JobStatus.PENDING, JobStatus.PROCESSING])
def test_a_confirm_while_an_undo_is_under_way_is_refused_before_the_run_is_resumed(
    client: TestClient, trigger: FakeTrigger, undo_status: JobStatus
) -> None:
    job_id = waiting_job(run=uuid.uuid4())
    # Rows from before the rule: an undo asked while the import awaited its review.
    undo_id = add_job(status=undo_status, source=JobSource.UNDO, undo_of=job_id)
    for action, body in (("confirm", {}), ("preview", {"mapping": {"SKU": "sku"}})):
        code, detail = post(client, job_id, action, **body)
        assert code == 409, detail
        assert f"undo of this import is under way (job {undo_id})" in detail
    assert trigger.resumed == [] and trigger.started == []
    assert read_job(job_id).status is JobStatus.AWAITING_REVIEW
    assert post(client, job_id, "reject")[0] == 202  # a rejection writes nothing
