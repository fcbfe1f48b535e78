"""GET /api/health: up (200) while uploads are accepted, and whether imports start at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import get_trigger
from db.session import reset_engines
from settings import get_settings
from tests.api.helpers import FakeTrigger, UnavailableTrigger


def test_health_is_200_when_database_and_prefect_answer(client: TestClient) -> None:
    response = client.get("/api/health")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "ready": True,
        "database": "ok",
        "prefect": "ok",
        "workers": 1,
        "waiting_for": None,
    }


def test_health_is_up_but_not_ready_when_prefect_does_not_answer(
    client: TestClient, trigger: FakeTrigger
) -> None:
    trigger.is_healthy = False

    response = client.get("/api/health")

    # Uploads are accepted (they wait), so the service is up; imports would not start yet.
    assert response.status_code == 200
    assert response.json() == {
        "status": "up",
        "ready": False,
        "database": "ok",
        "prefect": "error",
        "workers": 0,
        "waiting_for": "the Prefect API is not reachable yet",
    }


def test_health_is_not_ready_when_prefect_is_unreachable(app: FastAPI, client: TestClient) -> None:
    app.dependency_overrides[get_trigger] = lambda: UnavailableTrigger()

    body = client.get("/api/health").json()
    assert (body["status"], body["prefect"]) == ("up", "error")


def test_health_is_503_when_the_database_cannot_be_opened(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "importer.db"
    monkeypatch.setenv("IMPORTER_DATABASE_URL", f"sqlite:///{missing}")
    get_settings.cache_clear()
    reset_engines()

    response = client.get("/api/health")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["ready"], body["database"]) == ("down", False, "error")
    assert body["waiting_for"] == "the database does not answer"
