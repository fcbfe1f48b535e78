"""The upload's `guard` field: on by default, `off` skips the guardrails for one import."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from db.models import JobStatus
from tests.api.helpers import update_job

URL = "/api/excel/import"


@pytest.mark.parametrize(
    ("form", "checked"),
    [({}, True), ({"guard": "on"}, True), ({"guard": "off"}, False), ({"guard": "false"}, False)],
)
def test_an_upload_is_guarded_unless_its_form_says_guard_off(
    client: TestClient, workbook: Path, form: dict[str, str], checked: bool
) -> None:
    with workbook.open("rb") as f:
        answer = client.post(URL, files={"file": (workbook.name, f)}, data=form)
    assert answer.status_code == 202, answer.text

    job = client.get(f"/api/excel/import/{answer.json()['job_id']}/progress").json()

    assert job["guard"] == {"checked": checked, "tripped": []}
    assert job["previewing"] is checked  # a guarded import is measured before it writes


def test_a_guard_that_is_neither_on_nor_off_is_refused_in_one_sentence(
    client: TestClient, workbook: Path
) -> None:
    with workbook.open("rb") as f:
        answer = client.post(URL, files={"file": (workbook.name, f)}, data={"guard": "maybe"})

    assert answer.status_code == 422
    assert answer.json() == {"detail": "guard must be on or off, not 'maybe'"}


def test_a_file_waiting_for_its_review_sent_again_points_to_that_review(
    client: TestClient, workbook: Path
) -> None:
    """A guardrail held the first upload back; the person sends the file again with
    guard=off. Two jobs of one file would leave a review nobody answers: the answer is the
    review's job, in a sentence that says how to answer it."""
    with workbook.open("rb") as f:
        first = client.post(URL, files={"file": (workbook.name, f)}).json()["job_id"]
    update_job(uuid.UUID(first), status=JobStatus.AWAITING_REVIEW)

    with workbook.open("rb") as f:
        again = client.post(URL, files={"file": (workbook.name, f)}, data={"guard": "off"})

    assert again.status_code == 409
    assert again.json()["job_id"] == first
    assert again.json()["status"] == "awaiting_review"
    assert again.json()["detail"].startswith("this file waits for a review with the same options")
    assert "confirm or reject it there" in again.json()["detail"]
