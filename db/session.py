"""Engines and sessions for the configured database, with SQLite tuned for concurrent use."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from settings import PRIVATE_FILE, get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_LOCK_POLL_S = 0.001
# More connections than the API's 40 worker threads: a thread waiting for a connection
# must never starve the thread that would give one back (a deadlock under load).
POOL_SIZE = 10
MAX_OVERFLOW = 60


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets progress readers run while a batch is being written; foreign keys are off
    # by default in SQLite; the busy timeout makes writers queue instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # pysqlite's own transaction handling would defer BEGIN; we issue it ourselves.
    dbapi_connection.isolation_level = None


def _begin_sqlite(conn: Any) -> None:
    """Take the write lock up front (so two imports never deadlock on an upgrade), asking
    every millisecond, and saying so (`writers_waiting`) while it is taken.

    SQLite's own busy handler sleeps longer and longer (up to 100 ms) between tries, so an
    upload's one-row insert, waiting behind an import that commits batch after batch, only
    got the lock when a try happened to fall between two batches: seconds, sometimes. Asking
    every millisecond, it gets the lock at the first pause an import makes for it (see
    `itemsheet.runs.running.BATCH_GAP_S`): at most one batch later.
    """
    raw = conn.connection.driver_connection
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    raw.execute("PRAGMA busy_timeout=0")
    waiting: int | None = None
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            if waiting is None:
                waiting = _say_waiting(conn.engine.url.database)
            time.sleep(WRITE_LOCK_POLL_S)
    finally:
        if waiting is not None and waiting >= 0:
            os.close(waiting)  # and with it the shared lock
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


# A writer waiting for SQLite's write lock holds a shared `flock` on this file beside the
# database for as long as it waits; a process that writes many transactions in a row (an
# import's batches) pauses between two only when it cannot lock the file exclusively.
# The kernel drops the lock of a waiter that dies, so a crash leaves no one "waiting".
WAITING_SUFFIX = ".waiting"


def _waiting_file(database: str | None) -> str | None:
    """The file waiting writers lock; None for a database with no file of its own."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database + WAITING_SUFFIX


def _open_waiting(database: str | None) -> int | None:
    """The waiting file of `database`, opened (made 0600 if new); None without one."""
    path = _waiting_file(database)
    if path is None:
        return None
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    except OSError:
        return None


def _say_waiting(database: str | None) -> int:
    """Hold a shared lock on the waiting file; its descriptor (-1: there is none)."""
    handle = _open_waiting(database)
    if handle is None:
        return -1
    fcntl.flock(handle, fcntl.LOCK_SH)  # an exclusive holder only tests, for microseconds
    return handle


def writers_waiting(session: Session) -> bool:
    """Whether another writer waits for the write lock of the session's SQLite database,
    so that a process committing transaction after transaction should pause between two.
    True when that cannot be known (a database with no file of its own, a file that cannot
    be opened); False on PostgreSQL, where writers of other rows do not wait for ours."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return False
    engine = bind if isinstance(bind, Engine) else bind.engine
    handle = _open_waiting(engine.url.database)
    if handle is None:
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)  # the exclusive lock, if taken, goes with it
    return False


def make_engine(url: str, *, write: bool = True) -> Engine:
    """Create an engine for `url`; SQLite gets WAL, a busy timeout and, for writers, eager locks."""
    if url.startswith("sqlite"):
        _create_private_file(url)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
        )
        event.listen(engine, "connect", _configure_sqlite)
        if write:
            event.listen(engine, "begin", _begin_sqlite)
        else:
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    return create_engine(
        url,
        connect_args=_postgres_options(url),
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
    )


def _create_private_file(url: str) -> None:
    """Create a new SQLite database file 0600 before SQLite does, so its data is ours alone.

    SQLite would create it 0644 under the usual umask of 022, and gives the `-wal` and
    `-shm` files beside it the database file's mode, so those follow. A file that exists
    keeps its mode; a folder that does not exist is left for SQLite to complain about.
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def _postgres_options(url: str) -> dict[str, str]:
    # A process frozen inside a transaction (stopped, swapped out, partitioned) would hold
    # its job's row lock and the writer's advisory lock until its TCP connection died, so a
    # resume of its job would wait just as long. The server ends such a session once it has
    # been idle inside a transaction for as long as a silent import is given.
    given = make_url(url).query.get("options", "")
    options = " ".join(given) if isinstance(given, tuple) else given
    if "idle_in_transaction_session_timeout" in options:
        return {}  # the operator chose a limit in the URL; theirs wins
    idle_ms = int(get_settings().stale_after_s * 1000)
    return {"options": f"{options} -c idle_in_transaction_session_timeout={idle_ms}".strip()}


@lru_cache
def get_engine(*, write: bool = True) -> Engine:
    """The process-wide engine for the configured database (`write=False`: for readers)."""
    return make_engine(get_settings().resolved_database_url(), write=write)


def get_sessionmaker(*, write: bool = True) -> sessionmaker[Session]:
    """A session factory bound to the configured database."""
    return sessionmaker(get_engine(write=write), expire_on_commit=False)


def reset_engines() -> None:
    """Forget cached engines (after settings change, in tests)."""
    if get_engine.cache_info().currsize:
        get_engine(write=True).dispose()
        get_engine(write=False).dispose()
    get_engine.cache_clear()


@contextmanager
def session_scope(*, write: bool = True) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = get_sessionmaker(write=write)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def commit_without_waiting(session: Session) -> None:
    """Let the session's current transaction commit without waiting for its WAL to reach
    the disk (PostgreSQL's `synchronous_commit`, for this transaction alone).

    For a batch that commits together with its own progress: should the database server
    crash, its last few such commits may be lost, each batch with its progress, and the
    attempt resumes before them. The commit that ends a job waits as ever, which puts
    everything committed before it on the disk too. SQLite in WAL mode with
    synchronous=NORMAL already commits so.
    """
    if session.get_bind().dialect.name == "postgresql":  # SQLite: no transaction begun
        session.connection().exec_driver_sql("SET LOCAL synchronous_commit = off")
