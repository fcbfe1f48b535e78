"""API keys: with `IMPORTER_API_KEYS` set, every API route but health needs a Bearer key."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import matching_label
from api.deps import get_trigger
from api.main import create_app
from db.models import JobStatus
from settings import ApiKey, get_settings
from tests.api.helpers import FakeTrigger, add_job, all_jobs, read_job, stored_files, update_job

FIRST, SECOND = "first-key-0123456789", "second-key-0123456789"
KEYS = f"{FIRST}, {SECOND}"
UNKNOWN = uuid.UUID(int=1)


@pytest.fixture
def api_keys() -> str:
    """Two API keys for the `keyed` client, and blank entries, which count for none."""
    return f" ,{KEYS},"


def routes(job_id: uuid.UUID) -> list[tuple[str, str]]:
    """One request of each route family (besides the upload)."""
    return [
        ("GET", f"/api/excel/import/{job_id}/progress"),
        ("GET", f"/api/excel/import/{job_id}/events"),
        ("GET", "/api/excel/imports"),
        ("GET", f"/api/excel/import/{job_id}/errors"),
        ("GET", f"/api/excel/import/{job_id}/errors.csv"),
        ("POST", f"/api/excel/import/{job_id}/cancel"),
        ("POST", f"/api/excel/import/{job_id}/retry"),
        ("GET", "/api/no-such-route"),
    ]


@pytest.mark.parametrize(
    ("header", "challenge"),
    [
        (None, "Bearer"),
        ("Bearer wrong-key", 'Bearer error="invalid_token"'),
        ("Bearer first-key-0123456789-but-longer", 'Bearer error="invalid_token"'),
        ("Basic Zmlyc3Qta2V5Og==", "Bearer"),
        ("first-key-0123456789", "Bearer"),
    ],
)
def test_every_api_route_refuses_a_request_without_a_valid_key(
    keyed: TestClient, workbook: Path, header: str | None, challenge: str
) -> None:
    job_id = add_job(status=JobStatus.FAILED)
    headers = {"Authorization": header} if header else {}
    for method, path in routes(job_id):
        response = keyed.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == challenge
        assert response.headers["content-type"] == "application/json"
        detail = response.json()["detail"]
        assert "API key" in detail and "\n" not in detail
    with workbook.open("rb") as f:
        response = keyed.post("/api/excel/import", files={"file": f}, headers=headers)
    assert response.status_code == 401
    assert response.headers["connection"] == "close"
    # Refused before the body was read: nothing stored, no job, no flow run.
    assert [j.id for j in all_jobs()] == [job_id]
    assert stored_files(get_settings().data_dir) == []


@pytest.mark.parametrize("key", ["first-key-0123456789", "second-key-0123456789"])
def test_each_configured_key_opens_every_route(
    keyed: TestClient, workbook: Path, trigger: FakeTrigger, key: str
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with workbook.open("rb") as f:
        upload = keyed.post("/api/excel/import", files={"file": f}, headers=headers)
    assert upload.status_code == 202, upload.text
    job_id = uuid.UUID(upload.json()["job_id"])
    # This app runs its lifespan, so its dispatcher's own task creates the run: wait for it.
    assert trigger.a_run_started.wait(10), "the dispatcher created no run"
    assert [started[0] for started in trigger.started] == [job_id]
    update_job(job_id, status=JobStatus.FAILED)
    expected = {
        "progress": 200,
        "events": 200,
        "imports": 200,
        "errors": 200,
        "errors.csv": 200,
        "cancel": 409,  # a failed job cannot be cancelled: refused by the route, not the key
        "retry": 202,
        "no-such-route": 404,
    }
    for method, path in routes(job_id):
        response = keyed.request(method, path, headers=headers)
        assert response.status_code == expected[path.rsplit("/", 1)[-1]], (path, response.text)
    unknown = keyed.get(f"/api/excel/import/{UNKNOWN}/progress", headers=headers)
    assert unknown.status_code == 404


def test_the_scheme_name_is_case_insensitive(keyed: TestClient) -> None:
    response = keyed.get(
        "/api/excel/imports", headers={"Authorization": "bearer first-key-0123456789"}
    )
    assert response.status_code == 200


def test_health_page_and_docs_stay_open_so_a_browser_can_load_and_ask(
    keyed: TestClient,
) -> None:
    assert keyed.get("/api/health").status_code == 200
    page = keyed.get("/")
    assert page.status_code == 200 and "Item importer" in page.text
    assert keyed.get("/static/js/main.js").status_code == 200
    assert keyed.get("/docs").status_code == 200
    schema = keyed.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    progress = schema["paths"]["/api/excel/import/{job_id}/progress"]["get"]
    assert progress["security"] == [{"HTTPBearer": []}]
    assert "401" in progress["responses"]
    assert "security" not in schema["paths"]["/api/health"]["get"]


def test_without_keys_the_api_is_open_and_its_schema_asks_for_none(client: TestClient) -> None:
    assert client.get("/api/excel/imports").status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_keys_are_compared_whole_and_tell_their_label() -> None:
    accepted = (ApiKey("ci", FIRST), ApiKey("key-1a2b3c", SECOND))
    assert matching_label(SECOND, accepted) == "key-1a2b3c"
    assert matching_label(FIRST, accepted) == "ci"
    for given in ("", "first", f"{FIRST} ", FIRST.upper(), f"{SECOND}2", f"{FIRST},{SECOND}"):
        assert matching_label(given, accepted) is None, given
    assert matching_label("anything", ()) is None


def upload_as(client: TestClient, workbook: Path, headers: dict[str, str]) -> uuid.UUID:
    with workbook.open("rb") as f:
        response = client.post(
            "/api/excel/import", files={"file": f}, data={"force": "true"}, headers=headers
        )
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["job_id"])


def test_a_job_records_the_label_of_the_key_that_asked_never_characters_of_the_key(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch, trigger: FakeTrigger, workbook: Path
) -> None:
    monkeypatch.setenv("IMPORTER_API_KEYS", f"ci:{FIRST},{SECOND}")
    get_settings.cache_clear()
    app = create_app()
    app.dependency_overrides[get_trigger] = lambda: trigger

    with TestClient(app) as client:
        labelled = upload_as(client, workbook, {"Authorization": f"Bearer {FIRST}"})
        unlabelled = upload_as(client, workbook, {"Authorization": f"Bearer {SECOND}"})

    assert read_job(labelled).requested_by == "API key ci"
    hashed = read_job(unlabelled).requested_by
    assert hashed is not None and re.fullmatch(r"API key key-[0-9a-f]{6}", hashed)
    assert SECOND[-4:] not in hashed


def test_without_keys_a_bearer_value_sent_anyway_is_not_recorded(
    client: TestClient, workbook: Path
) -> None:
    job_id = upload_as(client, workbook, {"Authorization": "Bearer my-secret-1a2b"})
    assert read_job(job_id).requested_by == "API"
