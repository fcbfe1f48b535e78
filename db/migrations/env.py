"""Alembic environment: runs migrations on the URL given by `db.migrate` or the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from db import models  # noqa: F401  (registers the tables on Base.metadata)
from db.base import Base
from db.session import make_engine
from settings import get_settings

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url()
    # The writer engine begins SQLite transactions IMMEDIATE: processes that migrate a new
    # database at the same moment then wait for each other instead of failing "locked".
    engine = make_engine(url, write=True)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
