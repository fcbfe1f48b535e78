"""Requests for unknown host names (DNS rebinding) and writes from other sites are refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.origin import host_name
from db.models import JobStatus
from tests.api.helpers import add_job, all_jobs
from tests.conftest import LOCAL_HOSTS


@pytest.fixture
def local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default: only the local names."""
    from settings import get_settings

    monkeypatch.setenv("IMPORTER_ALLOWED_HOSTS", LOCAL_HOSTS)
    get_settings.cache_clear()


def upload(client: TestClient, workbook: Path, **headers: str) -> int:
    with workbook.open("rb") as f:
        answer = client.post(
            "/api/excel/import", files={"file": f}, headers=headers | {"host": "127.0.0.1:8000"}
        )
    return answer.status_code


@pytest.mark.usefixtures("local_only")
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "10.0.0.5"])
def test_a_host_name_the_service_is_not_configured_for_is_refused(
    client: TestClient, host: str
) -> None:
    answer = client.get("/api/excel/imports", headers={"host": host})

    assert answer.status_code == 400
    assert answer.json()["detail"].startswith(
        f"this service does not answer to the host name '{host_name(host)}'"
    )


@pytest.mark.usefixtures("local_only")
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:8000", "[::1]:8000"])
def test_local_host_names_are_served(client: TestClient, host: str) -> None:
    assert client.get("/api/excel/imports", headers={"host": host}).status_code == 200


def test_configured_domains_are_served(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from settings import get_settings

    monkeypatch.setenv("IMPORTER_ALLOWED_HOSTS", ".corp.example")
    get_settings.cache_clear()
    assert client.get("/api/health", headers={"host": "imports.corp.example"}).status_code == 200
    assert client.get("/api/health", headers={"host": "corp.example.evil"}).status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "http://127.0.0.1:9999"},  # another local service is another site too
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
    ],
)
def test_an_upload_from_another_site_is_refused_and_creates_no_job(
    client: TestClient, workbook: Path, headers: dict[str, str]
) -> None:
    with workbook.open("rb") as f:
        answer = client.post(
            "/api/excel/import", files={"file": f}, headers=headers | {"host": "127.0.0.1:8000"}
        )

    assert answer.status_code == 403
    assert answer.json()["detail"].startswith("requests from another site may not change")
    assert all_jobs() == []


def test_a_cancel_from_another_site_is_refused(client: TestClient) -> None:
    job_id = add_job(status=JobStatus.PROCESSING)

    answer = client.post(
        f"/api/excel/import/{job_id}/cancel",
        headers={"origin": "https://evil.example", "host": "127.0.0.1:8000"},
    )

    assert answer.status_code == 403
    assert all_jobs()[0].cancel_requested is False


def test_the_services_own_page_and_plain_clients_may_write(
    client: TestClient, workbook: Path
) -> None:
    assert upload(client, workbook, origin="http://127.0.0.1:8000") == 202
    # The same file again: through the check, to the duplicate rule (409), not 403.
    assert upload(client, workbook, **{"sec-fetch-site": "same-origin"}) == 409
    # No Origin at all: curl, the CLI, another service.
    with workbook.open("rb") as f:
        answer = client.post("/api/excel/import", files={"file": f}, data={"force": "true"})
    assert answer.status_code == 202
    assert len(all_jobs()) == 2


def test_a_configured_origin_may_write(
    client: TestClient, workbook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from settings import get_settings

    monkeypatch.setenv("IMPORTER_ALLOWED_ORIGINS", "https://app.example.com/")
    get_settings.cache_clear()
    assert upload(client, workbook, origin="https://app.example.com") == 202
    assert upload(client, workbook, origin="https://other.example.com") == 403


def test_reading_from_another_site_is_left_to_the_browser(client: TestClient) -> None:
    # A GET changes nothing; without CORS headers the browser keeps the answer from the page.
    answer = client.get(
        f"/api/excel/import/{uuid.uuid4()}/progress",
        headers={"origin": "https://evil.example", "host": "127.0.0.1"},
    )
    assert answer.status_code == 404
    assert "access-control-allow-origin" not in answer.headers
