"""Shared fixtures: a fresh importer data dir per test, one Prefect test server per session."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from db.migrate import upgrade_database
from db.session import reset_engines
from settings import apply_prefect_defaults, get_settings
from tests import postgres

apply_prefect_defaults()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the session; skips where none can be started."""
    if not postgres.available():
        pytest.skip(postgres.INSTALL_HINT)
    with postgres.cluster() as url:
        yield url


@pytest.fixture(params=["sqlite"])
def database(request: pytest.FixtureRequest) -> str:
    """The database backend a test runs on; packages that must pass on both override this."""
    return str(request.param)


@pytest.fixture
def switch_database(
    request: pytest.FixtureRequest, database: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Point the importer at a new, migrated, empty database (and data dir) of the backend."""

    def switch(data_dir: Path) -> Path:
        monkeypatch.setenv("IMPORTER_DATA_DIR", str(data_dir))
        if database == "postgresql":
            server = request.getfixturevalue("postgres_server")
            url = postgres.create_database(server, f"test_{uuid.uuid4().hex[:16]}")
            monkeypatch.setenv("IMPORTER_DATABASE_URL", url)
        else:
            monkeypatch.delenv("IMPORTER_DATABASE_URL", raising=False)
        get_settings.cache_clear()
        reset_engines()
        upgrade_database()
        return data_dir

    return switch


@pytest.fixture
def importer_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, switch_database: Any
) -> Iterator[Path]:
    """A migrated database (SQLite, or PostgreSQL where parametrised) and storage under
    `tmp_path/var`; yields the data dir."""
    for name in ("IMPORTER_STORAGE_URL", "IMPORTER_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)
    data_dir = switch_database(tmp_path / "var")
    yield data_dir
    reset_engines()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One temporary Prefect server for every flow test; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


@dataclass
class CliResult:
    """What one `importer` invocation printed and returned."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        """The JSON object on the last line of stdout."""
        lines = self.stdout.strip().splitlines()
        assert lines, f"no output; stderr: {self.stderr[-2000:]}"
        value = json.loads(lines[-1])
        assert isinstance(value, dict)
        return value


@pytest.fixture
def run_cli(importer_env: Path, prefect_server: str) -> Any:
    """Run `importer ARGS...` in this process (against the session's Prefect server)."""
    from typer.testing import CliRunner

    # Prefect's log handlers bind to sys.stderr when Prefect is first imported; do that
    # now, not inside CliRunner, whose captured streams are closed after each call.
    import flows.import_items  # noqa: F401
    from cli.main import app

    def run(*args: str) -> CliResult:
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run
