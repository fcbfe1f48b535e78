"""GET /api/health: 200 when the database and Prefect answer, else 503 naming which."""

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
    assert response.json() == {"database": "ok", "prefect": "ok"}


def test_health_is_503_when_prefect_does_not_answer(
    client: TestClient, trigger: FakeTrigger
) -> None:
    trigger.is_healthy = False

    response = client.get("/api/health")

    assert response.status_code == 503
    assert response.json() == {"database": "ok", "prefect": "error"}


def test_health_is_503_when_prefect_is_unreachable(app: FastAPI, client: TestClient) -> None:
    app.dependency_overrides[get_trigger] = lambda: UnavailableTrigger()

    assert client.get("/api/health").json()["prefect"] == "error"


def test_health_is_503_when_the_database_cannot_be_opened(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "importer.db"
    monkeypatch.setenv("IMPORTER_DATABASE_URL", f"sqlite:///{missing}")
    get_settings.cache_clear()
    reset_engines()

    response = client.get("/api/health")

    assert response.status_code == 503
    assert response.json() == {"database": "error", "prefect": "ok"}
