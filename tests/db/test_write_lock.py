"""SQLite's write lock: a writer that waits for it says so, so that an import pauses for it
between two batches (and only then)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from db.models import Item
from db.session import WAITING_SUFFIX, session_scope, writers_waiting
from settings import get_settings
from tests.conftest import mode_of


def waiting() -> bool:
    with session_scope(write=False) as session:
        return writers_waiting(session)


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_a_writer_waiting_for_the_write_lock_is_seen_until_it_has_it(importer_env: Path) -> None:
    assert not waiting()

    holding, release = threading.Event(), threading.Event()
    got_it = threading.Event()

    def hold() -> None:
        with session_scope() as session:
            session.execute(text("DELETE FROM column_mapping"))  # the write lock is taken
            holding.set()
            release.wait(10)

    def wait_for_it() -> None:
        with session_scope() as session:
            session.add(Item(sku="W-1", name="waited"))
            session.flush()
            got_it.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    try:
        assert eventually(waiting), "the waiting writer was not seen"
        assert not got_it.is_set()
    finally:
        release.set()
        holder.join(10)
        waiter.join(10)

    assert got_it.is_set()
    assert not waiting()  # it has the lock no more than it waits for it
    database = get_settings().resolved_database_url().removeprefix("sqlite:///")
    assert mode_of(Path(database + WAITING_SUFFIX)) == 0o600


def test_nobody_waits_behind_a_writer_alone(importer_env: Path) -> None:
    with session_scope() as session:
        session.add(Item(sku="A-1", name="alone"))
        session.flush()
        assert not writers_waiting(session)
    assert not waiting()
