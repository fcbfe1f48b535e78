"""Bring a database to the newest schema with Alembic, without an alembic.ini."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config

from settings import get_settings, make_private_dir, private_opener

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for `url` (default: the configured database)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url or get_settings().resolved_database_url())
    return config


def upgrade_database(url: str | None = None) -> None:
    """Apply every pending migration; creates the SQLite file and its folder if needed."""
    url = url or get_settings().resolved_database_url()
    if not url.startswith("sqlite:///"):
        command.upgrade(alembic_config(url), "head")
        return
    path = Path(url.removeprefix("sqlite:///"))
    make_private_dir(path.parent)
    # Alembic runs SQLite DDL outside one transaction (SQLite has no transactional DDL in
    # its eyes), so two processes upgrading a new database at once could both read the
    # old revision and apply the same step ("duplicate column"). One at a time, then: the
    # second finds the database at head and does nothing.
    with _exclusive(path.with_name(f"{path.name}.migrate.lock")):
        command.upgrade(alembic_config(url), "head")


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (a file beside the database) while inside."""
    with open(lock_path, "a", opener=private_opener) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
