"""Shared fixtures (a fresh importer database per test, one Prefect test server per session)
and the test tiers.

Every test is marked by what it starts, so a developer can run the part that covers a
change in seconds (`uv run pytest -m unit`) and the rest before a commit:

- `unit`: nothing: in-process, SQLite, the API through a fake Prefect trigger;
- `prefect`: the session's Prefect test server (flows, the CLI);
- `postgres`: a throwaway PostgreSQL cluster;
- `subprocess`: other processes (the parse child, a CLI process);
- `stack`: the whole service as processes (API, worker, Prefect server);
- `browser`: headless Chromium against a running stack.

The marks follow from the fixtures a test uses (and, for processes started without a
fixture, from the module's own `pytestmark`); a `unit` test that starts a process fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from db.migrate import upgrade_database
from db.session import reset_engines
from devtools import postgres
from settings import apply_prefect_defaults, get_settings

apply_prefect_defaults()

LOCAL_HOSTS = "127.0.0.1,localhost,::1"
TIERS = ("prefect", "postgres", "subprocess", "stack", "browser")
# Fixtures that mean a tier, wherever a test or its fixtures ask for them.
TIER_FIXTURES = {
    "prefect_server": "prefect",
    "postgres_server": "postgres",
    "running_stack": "stack",
    "stack": "stack",
    "shared_stack": "stack",
    "page": "browser",
    "browser": "browser",
}


def pytest_configure(config: pytest.Config) -> None:
    """Declare the tiers (markers are strict)."""
    for tier, what in (
        ("unit", "starts nothing: in-process, SQLite, a fake Prefect trigger"),
        ("prefect", "uses the session's Prefect test server"),
        ("postgres", "starts a throwaway PostgreSQL cluster"),
        ("subprocess", "starts other processes (parse child, CLI)"),
        ("stack", "starts the service as processes"),
        ("browser", "drives headless Chromium"),
    ):
        config.addinivalue_line("markers", f"{tier}: {what}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the tiers its fixtures and parameters start; `unit` if none."""
    for item in items:
        tiers = {TIER_FIXTURES[f] for f in getattr(item, "fixturenames", ()) if f in TIER_FIXTURES}
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database") == "postgresql":
            tiers.add("postgres")
        tiers.update(t for t in TIERS if item.get_closest_marker(t) is not None)
        if tiers & {"stack", "browser"}:
            tiers.add("subprocess")
        for tier in sorted(tiers - {m.name for m in item.iter_markers()}):
            item.add_marker(tier)
        if not tiers:
            item.add_marker("unit")
    _longest_files_first(items)


# The order in which the test processes are handed files (`--dist loadfile`, with
# `--no-loadscope-reorder`: xdist would otherwise hand out the files with the most tests
# first, which are unit files, and leave the stack files with a few long tests to the
# end): those that start stacks and browsers take minutes, unit files seconds. Handed out
# first, the long ones run beside each other and the short ones fill the gaps at the end,
# rather than one stack file running alone while the other processes have nothing to do.
FILE_WEIGHT = {"stack": 0, "browser": 1, "prefect": 2, "postgres": 3, "subprocess": 4}


def _longest_files_first(items: list[pytest.Item]) -> None:
    """Order files by their heaviest tier, keeping each file's tests together and in order."""
    weight: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        path = item.nodeid.split("::", 1)[0]
        first.setdefault(path, index)
        lightest = len(FILE_WEIGHT)
        marks = (FILE_WEIGHT.get(m.name, lightest) for m in item.iter_markers())
        heaviest = min(marks, default=lightest)
        weight[path] = min(weight.get(path, heaviest), heaviest)
    order = {id(item): index for index, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[int, int, int]:
        path = item.nodeid.split("::", 1)[0]
        return weight[path], first[path], order[id(item)]

    items.sort(key=key)


# Test processes: one more than the cores the suite may use (a stack test spends much of
# its time waiting for a start, a heartbeat or a poll, so one process per core leaves
# cores idle: on 2 cores, 2 processes kept them 76 % busy), at least three and at most
# eight (each process starts its own Prefect server and stack: about 1 GB of memory).
MIN_PROCESSES, MAX_PROCESSES = 3, 8


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many test processes `-n auto` starts: the cores this process may run on, plus one."""
    return max(MIN_PROCESSES, min(len(os.sched_getaffinity(0)) + 1, MAX_PROCESSES))


@pytest.fixture(autouse=True)
def _test_client_host_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process test clients call themselves `testserver` and `test`; the service
    is configured to answer to those names as an operator would add theirs."""
    monkeypatch.setenv("IMPORTER_ALLOWED_HOSTS", f"{LOCAL_HOSTS},testserver,test")
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `unit` test that starts a process (or Prefect's temporary server) fails, saying so."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(
            "a unit test started a process; mark it `subprocess` (or use the fixture that"
            f" starts it): {args[1] if len(args) > 1 else args}"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a file created without a mode is readable by everyone."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode_of(path: Path) -> int:
    """A file's or folder's permission bits, as `0o600`."""
    return path.stat().st_mode & 0o777


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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database migrated to the newest schema once per run; tests get copies."""
    path = tmp_path_factory.mktemp("template") / "importer.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """A PostgreSQL database migrated once per run; tests get `CREATE DATABASE ... TEMPLATE`."""
    name = "importer_template"
    upgrade_database(postgres.create_database(postgres_server, name))
    reset_engines()  # no connection may stay open to a template while it is copied
    return name


@pytest.fixture
def switch_database(
    request: pytest.FixtureRequest, database: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Point the importer at a new, migrated, empty database (and data dir) of the backend.

    The schema comes from a template migrated once per run (`sqlite_template`,
    `postgres_template`), so a test pays for a file copy or a `CREATE DATABASE`, not for
    Alembic; `tests/db/test_migrations.py` runs the migrations themselves.
    """

    def switch(data_dir: Path) -> Path:
        monkeypatch.setenv("IMPORTER_DATA_DIR", str(data_dir))
        if database == "postgresql":
            server = request.getfixturevalue("postgres_server")
            template = request.getfixturevalue("postgres_template")
            name = f"test_{uuid.uuid4().hex[:16]}"
            url = postgres.create_database(server, name, template=template)
            monkeypatch.setenv("IMPORTER_DATABASE_URL", url)
        else:
            monkeypatch.delenv("IMPORTER_DATABASE_URL", raising=False)
            data_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(request.getfixturevalue("sqlite_template"), data_dir / "importer.db")
        get_settings.cache_clear()
        reset_engines()
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


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Any]:
    """One `importer up` per test process for the functional stack and page tests, on the
    session's Prefect server (`devtools.stack.shared_stack` says how it is set up)."""
    from devtools.stack import shared_stack

    with shared_stack(tmp_path_factory.mktemp("shared-stack"), prefect_server) as running:
        yield running


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
