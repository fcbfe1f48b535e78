"""The upload's `mode` form field: kept on the job, shown in its JSON, the history, its
events and the metrics, told apart from other modes when looking for a duplicate, refused
when unknown."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from itemsheet.jobs.views import job_view
from orchestration.events import job_event
from tests.api.helpers import read_job, update_job
from tests.api.test_metrics import scrape, value
from tests.api.test_upload import post_file


def test_the_mode_is_kept_and_shown_in_the_job_history_events_and_metrics(
    client: TestClient, workbook: Path
) -> None:
    accepted = post_file(client, workbook, mode="update_only")
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    key = uuid.UUID(job_id)
    update_job(key, status="completed", total_rows=2, updated=1, skipped=1)

    progress = client.get(f"/api/excel/import/{job_id}/progress").json()
    history = client.get("/api/excel/imports").json()["items"]
    told = job_event(job_view(read_job(key)), base_url="http://x")

    assert (progress["mode"], progress["skipped"]) == ("update_only", 1)
    assert [(j["job_id"], j["mode"], j["skipped"]) for j in history] == [(job_id, "update_only", 1)]
    assert told is not None
    assert (told.payload.mode, told.payload.skipped) == ("update_only", 1)
    assert value(scrape(client), "importer_rows_total", outcome="skipped") == 1


def test_without_a_mode_an_upload_upserts(client: TestClient, workbook: Path) -> None:
    job_id = post_file(client, workbook).json()["job_id"]

    assert client.get(f"/api/excel/import/{job_id}/progress").json()["mode"] == "upsert"


def test_the_same_file_in_another_mode_is_not_a_duplicate(
    client: TestClient, workbook: Path
) -> None:
    first = post_file(client, workbook, mode="create_only")
    again = post_file(client, workbook, mode="create_only")
    other = post_file(client, workbook, mode="update_only")

    assert (first.status_code, again.status_code, other.status_code) == (202, 409, 202)


def test_an_unknown_mode_is_refused_with_a_sentence(client: TestClient, workbook: Path) -> None:
    response = post_file(client, workbook, mode="replace")

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "mode" in detail and "\n" not in detail
