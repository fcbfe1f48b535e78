"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from db.base import Base
from db.migrate import upgrade_database
from db.session import make_engine

ROOT = Path(__file__).resolve().parents[2]


def test_upgrade_creates_every_table_and_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'app.db'}"
    upgrade_database(url)
    engine = make_engine(url, write=False)
    try:
        assert {"import_job", "item", "import_row_error"} <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_upgrade_twice_is_harmless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade_database(url)
    upgrade_database(url)


@pytest.mark.subprocess
def test_processes_upgrading_a_new_sqlite_database_at_once_all_succeed(tmp_path: Path) -> None:
    # Each round: a new database, four processes that import everything first and then,
    # at one signal, upgrade it at the same moment.
    script = (
        "import os, sys, time\n"
        "from db.migrate import upgrade_database\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
        "upgrade_database(sys.argv[1])\n"
    )
    for round_no in range(3):
        folder = tmp_path / f"round-{round_no}"
        folder.mkdir()
        go = folder / "go"
        url = f"sqlite:///{folder / 'importer.db'}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, url, str(go)], cwd=ROOT, stderr=subprocess.PIPE
            )
            for _ in range(4)
        ]
        time.sleep(2)  # the imports; a process that is late only makes the race milder
        go.touch()
        errors = [p.communicate(timeout=120)[1].decode()[-500:] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, errors
