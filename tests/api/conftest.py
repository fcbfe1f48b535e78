"""The real app on a fresh database per test, with only the Prefect trigger swapped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import get_trigger
from api.main import create_app
from settings import get_settings
from tests.api.helpers import FakeTrigger
from tests.contract.workbooks import write_xlsx

ITEMS = [["SKU", "Name", "Price"], ["A-1", "Apple", 1.5], ["B-2", "Banana", 0.25]]


@pytest.fixture
def trigger() -> FakeTrigger:
    """The trigger every request gets, unless a test puts another in `app`."""
    return FakeTrigger()


@pytest.fixture
def app(importer_env: Path, trigger: FakeTrigger) -> Iterator[FastAPI]:
    """A new app on the test's own database and storage."""
    application = create_app()
    application.dependency_overrides[get_trigger] = lambda: trigger
    yield application
    application.dependency_overrides.clear()


@pytest.fixture
def api_keys() -> str:
    """What `IMPORTER_API_KEYS` says for the `keyed` client; a module names its own keys."""
    return "api-key-0123456789"


@pytest.fixture
def keyed(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch, trigger: FakeTrigger, api_keys: str
) -> Iterator[TestClient]:
    """A client of an app started with `api_keys`."""
    monkeypatch.setenv("IMPORTER_API_KEYS", api_keys)
    get_settings.cache_clear()
    application = create_app()
    application.dependency_overrides[get_trigger] = lambda: trigger
    with TestClient(application) as test_client:
        yield test_client


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of `app` (its start-up migration is covered by its own test)."""
    test_client = TestClient(app)
    yield test_client
    test_client.close()


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    """A small valid .xlsx."""
    return write_xlsx(tmp_path / "items.xlsx", ITEMS)


@pytest.fixture
def upload_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """A small upload limit (20,000 bytes) for oversize tests."""
    monkeypatch.setenv("IMPORTER_MAX_UPLOAD_BYTES", "20000")
    get_settings.cache_clear()
    return 20000


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    """The API's queries (cursor, locks, duplicate check) must hold on both backends."""
    return str(request.param)
