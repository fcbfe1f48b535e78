"""GET /metrics: job figures read from the database, request latencies, keys and host names."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.deps import get_trigger
from api.main import create_app
from db.models import JobSource, JobStatus
from itemsheet.sheet.formats import UNSUPPORTED
from tests.api.helpers import FakeTrigger, add_job, at

KEY = "metrics-key-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    """Every sample of one scrape, by name and labels, as Prometheus would parse it."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; a KeyError names a sample the scrape does not have."""
    return samples[(name, frozenset(labels.items()))]


def upload(client: TestClient, workbook: Path) -> uuid.UUID:
    with workbook.open("rb") as f:
        response = client.post("/api/excel/import", files={"file": f})
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["job_id"])


def test_jobs_are_counted_by_status_and_source(client: TestClient) -> None:
    add_job(status=JobStatus.COMPLETED)
    add_job(status=JobStatus.COMPLETED)
    add_job(status=JobStatus.FAILED, error=UNSUPPORTED)
    add_job(status=JobStatus.PENDING, source=JobSource.CLI)

    samples = scrape(client)

    assert value(samples, "importer_jobs", status="completed", source="upload") == 2
    assert value(samples, "importer_jobs", status="failed", source="upload") == 1
    assert value(samples, "importer_jobs", status="pending", source="cli") == 1
    # Every pair is shown, so an alert on a status can tell 0 from "no data".
    assert value(samples, "importer_jobs", status="processing", source="schedule") == 0
    assert sum(v for (name, _), v in samples.items() if name == "importer_jobs") == 4


def test_rows_are_counted_by_outcome_without_dry_runs(client: TestClient) -> None:
    add_job(status=JobStatus.COMPLETED, created=5, updated=3, unchanged=2, failed=1)
    add_job(status=JobStatus.PROCESSING, created=10, processed_rows=10)
    add_job(status=JobStatus.COMPLETED, dry_run=True, created=100, failed=7)

    samples = scrape(client)

    rows = {o: value(samples, "importer_rows_total", outcome=o) for o in ("created", "updated")}
    assert rows == {"created": 15, "updated": 3}
    assert value(samples, "importer_rows_total", outcome="unchanged") == 2
    assert value(samples, "importer_rows_total", outcome="failed") == 1


def test_pending_jobs_and_those_still_without_a_flow_run_are_shown(client: TestClient) -> None:
    add_job(status=JobStatus.PENDING)
    add_job(status=JobStatus.PENDING, flow_run_id=uuid.uuid4())
    add_job(status=JobStatus.PROCESSING)  # no run of its own is recorded: not waiting

    samples = scrape(client)

    assert value(samples, "importer_pending_jobs") == 2
    assert value(samples, "importer_pending_jobs_without_run") == 1


def test_failed_jobs_are_counted_by_the_class_of_their_reason(client: TestClient) -> None:
    add_job(status=JobStatus.FAILED, error=UNSUPPORTED)
    add_job(status=JobStatus.FAILED, error="reading the file took longer than 300 s; it is large")
    for total in (10, 20):
        add_job(
            status=JobStatus.FAILED,
            error=f"3 of {total} rows are invalid and on_error is abort; nothing was imported",
        )
    add_job(status=JobStatus.FAILED, error=None)
    add_job(status=JobStatus.CANCELLED, error="the import was cancelled before it started")

    samples = scrape(client)

    counts = {
        reason: value(samples, "importer_failed_jobs", reason=reason)
        for reason in ("unsupported", "timeout_or_memory", "invalid_rows", "other", "corrupt")
    }
    assert counts == {
        "unsupported": 1,
        "timeout_or_memory": 1,
        "invalid_rows": 2,
        "other": 1,
        "corrupt": 0,
    }


def test_start_delay_is_the_time_from_creation_to_the_first_start(client: TestClient) -> None:
    for started in (0.3, 4.0, 45.0):
        add_job(status=JobStatus.COMPLETED, created_at=at(0), started_at=at(started))
    add_job(status=JobStatus.PENDING, created_at=at(0))  # not started: not counted
    add_job(source=JobSource.CLI, created_at=at(0), started_at=at(0.1))
    # Another host's clock a second behind: counted as no wait, not as a negative one.
    add_job(source=JobSource.SCHEDULE, created_at=at(10), started_at=at(9))

    samples = scrape(client)

    name = "importer_start_delay_seconds"
    upload_buckets = {
        le: value(samples, f"{name}_bucket", source="upload", le=le)
        for le in ("0.5", "5.0", "30.0", "60.0", "+Inf")
    }
    assert upload_buckets == {"0.5": 1, "5.0": 2, "30.0": 2, "60.0": 3, "+Inf": 3}
    assert value(samples, f"{name}_count", source="upload") == 3
    assert value(samples, f"{name}_sum", source="upload") == pytest.approx(49.3, abs=0.01)
    assert value(samples, f"{name}_count", source="cli") == 1
    assert value(samples, f"{name}_sum", source="cli") == pytest.approx(0.1, abs=0.01)
    assert value(samples, f"{name}_bucket", source="schedule", le="0.5") == 1
    assert value(samples, f"{name}_sum", source="schedule") == 0


def test_uploads_and_progress_reads_are_timed(client: TestClient, workbook: Path) -> None:
    name = "importer_request_duration_seconds"
    before = scrape(client)
    assert value(before, f"{name}_count", endpoint="upload") == 0

    job_id = upload(client, workbook)
    for _ in range(2):
        assert client.get(f"/api/excel/import/{job_id}/progress").status_code == 200
    assert client.get("/api/excel/imports").status_code == 200  # not a timed endpoint

    samples = scrape(client)
    assert value(samples, f"{name}_count", endpoint="upload") == 1
    assert value(samples, f"{name}_count", endpoint="progress") == 2
    assert value(samples, f"{name}_bucket", endpoint="progress", le="+Inf") == 2
    assert value(samples, f"{name}_sum", endpoint="upload") > 0
    assert {labels for (n, labels) in samples if n == f"{name}_count"} == {
        frozenset({("endpoint", "upload")}),
        frozenset({("endpoint", "progress")}),
    }


def test_each_app_keeps_its_own_request_counts(
    client: TestClient, workbook: Path, trigger: FakeTrigger
) -> None:
    other = create_app()
    other.dependency_overrides[get_trigger] = lambda: trigger
    with TestClient(other) as other_client:
        upload(client, workbook)

        counts = [
            value(scrape(c), "importer_request_duration_seconds_count", endpoint="upload")
            for c in (client, other_client)
        ]

    assert counts == [1, 0]


@pytest.fixture
def api_keys() -> str:
    """The keys of the `keyed` client's app: an API key."""
    return KEY


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/metrics", None),
        ("/metrics", "Bearer wrong-key"),
        ("/metrics/", None),
    ],
)
def test_metrics_need_a_valid_key_when_keys_are_set(
    keyed: TestClient, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}

    response = keyed.get(path, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "API key" in response.json()["detail"]


def test_metrics_are_served_with_the_right_key(keyed: TestClient) -> None:
    add_job(status=JobStatus.COMPLETED)

    samples = scrape(keyed, Authorization=f"Bearer {KEY}")

    assert value(samples, "importer_jobs", status="completed", source="upload") == 1


def test_metrics_are_refused_for_a_host_name_the_service_does_not_answer_to(
    client: TestClient,
) -> None:
    response = client.get("/metrics", headers={"host": "attacker.example"})

    assert response.status_code == 400
    assert "attacker.example" in response.json()["detail"]


def test_the_schema_says_metrics_need_the_key(keyed: TestClient) -> None:
    schema = keyed.get("/openapi.json").json()

    metrics = schema["paths"]["/metrics"]["get"]
    assert metrics["security"] == [{"HTTPBearer": []}]
    assert "401" in metrics["responses"]
