"""Sessions on a real PostgreSQL: a writer frozen inside a transaction does not hold its locks."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from db.item_store import lock_for_transaction
from db.models import Item
from db.session import reset_engines, session_scope
from settings import get_settings


@pytest.fixture(params=["postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_transaction_left_idle_loses_its_locks_after_the_stale_limit(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_STALE_AFTER_S", "1")
    get_settings.cache_clear()
    reset_engines()
    with session_scope() as session:
        session.add(Item(sku="A-1", name="before"))

    # A writer takes the writer's lock and a row lock, then stops talking (frozen, partitioned).
    frozen = session_scope()
    stuck = frozen.__enter__()
    lock_for_transaction(stuck, "items")
    stuck.execute(update(Item).where(Item.sku == "A-1").values(name="frozen"))
    time.sleep(2.5)

    # Another writer gets both locks without waiting for the frozen one's connection to die.
    started = time.monotonic()
    with session_scope() as session:
        session.execute(text("SET LOCAL lock_timeout = '5s'"))
        lock_for_transaction(session, "items")
        session.execute(update(Item).where(Item.sku == "A-1").values(name="after"))
    assert time.monotonic() - started < 5
    with session_scope(write=False) as session:
        assert session.scalars(select(Item.name)).one() == "after"

    # The frozen writer, waking up, learns its transaction is gone and writes nothing.
    with pytest.raises(DBAPIError, match="idle-in-transaction"):
        frozen.__exit__(None, None, None)
    with session_scope(write=False) as session:
        assert session.scalars(select(Item.name)).one() == "after"


def test_server_options_in_the_database_url_are_kept_beside_the_limit(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_STALE_AFTER_S", "7")
    url = get_settings().resolved_database_url()
    for options, idle in (
        ("-c statement_timeout=1234", "7s"),
        ("-c idle_in_transaction_session_timeout=9s", "9s"),
    ):
        sep = "&" if "?" in url else "?"
        monkeypatch.setenv("IMPORTER_DATABASE_URL", f"{url}{sep}options={quote(options)}")
        get_settings.cache_clear()
        reset_engines()
        with session_scope(write=False) as session:
            show = {
                name: session.execute(text(f"SHOW {name}")).scalar_one()
                for name in ("statement_timeout", "idle_in_transaction_session_timeout")
            }
        assert show["idle_in_transaction_session_timeout"] == idle
        if "statement_timeout" in options:
            assert show["statement_timeout"] == "1234ms"


def test_a_commit_without_waiting_is_this_transactions_alone(importer_env: Path) -> None:
    """A batch's transaction commits without waiting for the disk; the next transaction on
    the same pooled connection (the one that ends the job, say) waits again."""
    from sqlalchemy.orm import Session

    from db.session import commit_without_waiting

    def setting(session: Session) -> str:
        return str(session.execute(text("SHOW synchronous_commit")).scalar_one())

    with session_scope() as session:
        before = setting(session)
        commit_without_waiting(session)
        assert setting(session) == "off"
        session.add(Item(sku="S-1", name="Kept"))
    with session_scope() as session:
        assert setting(session) == before == "on"
        assert session.scalars(select(Item.name)).all() == ["Kept"]
