"""GET /api/excel/import/{id}/progress: the job view, ETA, Prefect link and error link."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from db.models import JobStatus, utcnow
from settings import get_settings
from tests.api.helpers import add_job


def progress_url(job_id: uuid.UUID | str) -> str:
    return f"/api/excel/import/{job_id}/progress"


def test_progress_of_an_unknown_job_is_404(client: TestClient) -> None:
    job_id = uuid.uuid4()

    response = client.get(progress_url(job_id))

    assert response.status_code == 404
    assert response.json() == {"detail": f"there is no import job {job_id}; check the id"}


def test_progress_with_a_malformed_id_is_422(client: TestClient) -> None:
    response = client.get(progress_url("not-a-uuid"))

    assert response.status_code == 422
    assert response.json()["detail"].startswith("job_id is not valid: ")


def test_progress_shows_the_job_view_with_links_and_flow_run(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_PREFECT_UI_URL", "http://prefect.example:4200/")
    get_settings.cache_clear()
    run = uuid.uuid4()
    job_id = add_job(
        status=JobStatus.PROCESSING,
        filename="spring.xlsx",
        total_rows=400,
        processed_rows=100,
        created=60,
        updated=30,
        unchanged=5,
        failed=5,
        last_batch=1,
        attempt=1,
        flow_run_id=run,
        warnings=["column 'Colour' is not imported"],
        started_at=utcnow() - timedelta(seconds=10),
    )

    body = client.get(progress_url(job_id)).json()

    assert body["job_id"] == str(job_id)
    assert body["status"] == "processing"
    assert body["filename"] == "spring.xlsx"
    assert (body["total_rows"], body["processed_rows"], body["percent"]) == (400, 100, 25.0)
    assert (body["created"], body["updated"], body["unchanged"], body["failed"]) == (60, 30, 5, 5)
    assert body["warnings"] == ["column 'Colour' is not imported"]
    assert body["cancel_requested"] is False
    assert body["flow_run_id"] == str(run)
    assert body["flow_run_url"] == f"http://prefect.example:4200/runs/flow-run/{run}"
    assert body["errors_url"] == f"/api/excel/import/{job_id}/errors"


def test_eta_comes_from_the_rate_and_the_remaining_rows(client: TestClient) -> None:
    job_id = add_job(
        status=JobStatus.PROCESSING,
        total_rows=3000,
        processed_rows=1000,
        started_at=utcnow() - timedelta(seconds=10),
    )

    body = client.get(progress_url(job_id)).json()

    # 1000 rows in the elapsed time (10 s, and what a slow machine took to answer), and
    # 2000 rows remain at that rate.
    assert 10 <= body["elapsed_s"] < 15
    assert body["rows_per_s"] == pytest.approx(1000 / body["elapsed_s"], rel=0.02)
    assert body["eta_s"] == pytest.approx(2000 / body["rows_per_s"], rel=0.02)


@pytest.mark.parametrize(
    "fields",
    [
        {"status": JobStatus.PENDING},
        {"status": JobStatus.PROCESSING, "started_at": utcnow(), "total_rows": None},
        {"status": JobStatus.PROCESSING, "started_at": utcnow(), "total_rows": 10},
        {"status": JobStatus.FAILED, "total_rows": 10, "processed_rows": 5},
    ],
    ids=["pending", "rows-not-counted-yet", "no-row-written-yet", "failed"],
)
def test_eta_is_null_when_it_cannot_be_known(client: TestClient, fields: dict[str, object]) -> None:
    job_id = add_job(**fields)

    assert client.get(progress_url(job_id)).json()["eta_s"] is None


def test_eta_of_a_completed_job_is_zero(client: TestClient) -> None:
    job_id = add_job(status=JobStatus.COMPLETED, total_rows=10, processed_rows=10)

    assert client.get(progress_url(job_id)).json()["eta_s"] == 0


def test_flow_run_url_is_null_without_a_flow_run(client: TestClient) -> None:
    job_id = add_job()

    body = client.get(progress_url(job_id)).json()

    assert (body["flow_run_id"], body["flow_run_url"]) == (None, None)


def test_flow_run_url_is_derived_from_prefects_api_url_when_not_configured(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    monkeypatch.delenv("IMPORTER_PREFECT_UI_URL", raising=False)
    get_settings.cache_clear()
    run = uuid.uuid4()
    job_id = add_job(flow_run_id=run)

    with temporary_settings(
        updates={PREFECT_API_URL: "http://prefect.internal:4200/api"},
        restore_defaults={PREFECT_UI_URL},
    ):
        body = client.get(progress_url(job_id)).json()

    assert body["flow_run_url"] == f"http://prefect.internal:4200/runs/flow-run/{run}"
