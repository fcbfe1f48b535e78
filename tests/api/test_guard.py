"""The upload's `guard` field: on by default, `off` skips the guardrails for one import."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

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
