"""The embedded SQLite database is for the service's user alone, whatever the umask."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from db.migrate import upgrade_database
from db.session import make_engine
from tests.conftest import mode_of


@pytest.mark.usefixtures("umask_022")
def test_a_new_database_and_its_wal_and_shm_files_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    database = data_dir / "importer.db"
    url = f"sqlite:///{database}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:  # a write: the -wal and -shm files exist now
            connection.execute(text("DELETE FROM column_mapping"))
            files = [database, *(database.with_name(database.name + e) for e in ("-wal", "-shm"))]
            modes = {path.name: mode_of(path) for path in files}
    finally:
        engine.dispose()

    assert modes == {"importer.db": 0o600, "importer.db-wal": 0o600, "importer.db-shm": 0o600}
    assert mode_of(data_dir) == 0o700
    assert mode_of(data_dir / "importer.db.migrate.lock") == 0o600
