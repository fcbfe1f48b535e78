"""The application as a whole: start-up, documentation, and what the API may import."""

from __future__ import annotations

import ast
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import get_trigger
from api.main import UNEXPECTED, create_app
from db.session import reset_engines
from settings import get_settings
from tests.api.helpers import FakeTrigger, serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def unmigrated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data_dir = tmp_path / "fresh"
    monkeypatch.setenv("IMPORTER_DATA_DIR", str(data_dir))
    for name in ("IMPORTER_DATABASE_URL", "IMPORTER_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    reset_engines()
    yield data_dir
    reset_engines()
    get_settings.cache_clear()


def test_startup_creates_and_upgrades_an_embedded_sqlite_database(
    unmigrated_data_dir: Path,
) -> None:
    app = create_app()
    app.dependency_overrides[get_trigger] = lambda: FakeTrigger()

    with TestClient(app) as client:
        response = client.get("/api/excel/imports")

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}
    assert (unmigrated_data_dir / "importer.db").exists()


def test_openapi_documents_every_endpoint_and_its_refusals(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]

    assert set(paths) == {
        "/api/excel/import",
        "/api/excel/import/{job_id}/progress",
        "/api/excel/import/{job_id}/events",
        "/api/excel/import/{job_id}/errors",
        "/api/excel/import/{job_id}/errors.csv",
        "/api/excel/import/{job_id}/rejected.{kind}",
        "/api/excel/import/{job_id}/cancel",
        "/api/excel/import/{job_id}/retry",
        "/api/excel/import/{job_id}/preview",
        "/api/excel/import/{job_id}/confirm",
        "/api/excel/import/{job_id}/reject",
        "/api/excel/import/{job_id}/undo",
        "/api/excel/imports",
        "/api/excel/mappings",
        "/api/excel/template.xlsx",
        "/api/excel/template.csv",
        "/api/items/export",
        "/api/health",
        "/metrics",
    }
    upload = paths["/api/excel/import"]["post"]["responses"]
    assert set(upload) == {"202", "400", "409", "413", "415", "422"}
    assert upload["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ImportAccepted"
    )
    progress = paths["/api/excel/import/{job_id}/progress"]["get"]["responses"]
    assert progress["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobProgress")
    assert (
        "text/event-stream"
        in (paths["/api/excel/import/{job_id}/events"]["get"]["responses"]["200"]["content"])
    )
    rejected = paths["/api/excel/import/{job_id}/rejected.{kind}"]["get"]
    assert {"404", "409", "410"} <= set(rejected["responses"])
    assert set(rejected["responses"]["200"]["content"]) == {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "text/csv; charset=utf-8",
    }
    kind = next(p for p in rejected["parameters"] if p["name"] == "kind")
    assert kind["schema"]["enum"] == ["xlsx", "csv"]
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain; version=0.0.4; charset=utf-8"}


def test_an_unexpected_error_is_answered_in_one_sentence_without_a_traceback(
    app_without_raising: TestClient,
) -> None:
    response = app_without_raising.get(
        "/api/excel/import/00000000-0000-0000-0000-000000000000/progress"
    )

    assert response.status_code == 500
    assert response.json() == {
        "detail": "the server hit an unexpected error; try again, and report it if it persists"
    }


@pytest.fixture
def broken_app(importer_env: Path) -> FastAPI:
    """An app whose database has lost its tables, so any job lookup fails unexpectedly."""
    from sqlalchemy import text

    from db.session import session_scope

    with session_scope() as session:
        session.execute(text("DROP TABLE item_undo"))
        session.execute(text("DROP TABLE import_row_error"))
        session.execute(text("DROP TABLE import_job"))
    app = create_app()
    app.dependency_overrides[get_trigger] = lambda: FakeTrigger()
    return app


@pytest.fixture
def app_without_raising(broken_app: FastAPI) -> Iterator[TestClient]:
    """A test client that answers a server error instead of raising it in the test."""
    with_client = TestClient(broken_app, raise_server_exceptions=False)
    yield with_client
    with_client.close()


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_the_api_never_imports_flows() -> None:
    for path in (ROOT / "api").rglob("*.py"):
        roots = {name.split(".")[0] for name in _imported_modules(path)}
        assert "flows" not in roots, path


def test_the_upload_service_imports_neither_fastapi_nor_prefect() -> None:
    roots = {
        name.split(".")[0] for name in _imported_modules(ROOT / "itemsheet" / "jobs" / "uploads.py")
    }

    assert not roots & {"fastapi", "starlette", "prefect", "flows"}


def http_exchange(sock: socket.socket, path: str) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 request on an open socket; its status and body."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    reader = sock.makefile("rb")
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, reader.read(length)


def test_an_unexpected_error_leaves_the_connection_usable_for_the_next_request(
    broken_app: FastAPI,
) -> None:
    with serve(broken_app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            status, body = http_exchange(sock, f"/api/excel/import/{uuid.uuid4()}/progress")
            assert (status, json.loads(body)["detail"]) == (500, UNEXPECTED)
            # The same connection: a well-behaved client's next request is answered.
            status, body = http_exchange(sock, "/openapi.json")
            assert status == 200 and json.loads(body)["info"]["title"] == "Item importer"
