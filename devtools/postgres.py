"""A throwaway PostgreSQL cluster for tests and benchmarks, started with initdb/pg_ctl."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) are not installed;"
    " `apt-get install postgresql` (or run .ci/run, which installs them) to run these tests"
)


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for version in ("17", "16", "15", "14"):
        candidate = Path(f"/usr/lib/postgresql/{version}/bin/{name}")
        if candidate.exists():
            return str(candidate)
    return None


def available() -> bool:
    """True when a cluster can be started here."""
    return _binary("initdb") is not None and _binary("pg_ctl") is not None


def _as_owner(args: list[str]) -> list[str]:
    # initdb refuses to run as root; run the server as the `postgres` user then.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def cluster(*, durable: bool = False) -> Iterator[str]:
    """Start a cluster on a free port; yields a libpq URL prefix without a database name.

    Tests run without fsync (nothing here must survive a power cut); `durable=True`
    keeps PostgreSQL's defaults, as the benchmarks need.
    """
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb and pg_ctl, INSTALL_HINT
    base = Path(tempfile.mkdtemp(prefix="importer-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    subprocess.run(
        _as_owner(
            [initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"]
        ),
        **run,
    )  # type: ignore[call-overload]
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off"
    subprocess.run(
        _as_owner(
            [pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(base / "server.log"), "start"]
        ),
        **run,
    )  # type: ignore[call-overload]
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def create_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """Create a database on the cluster (empty, or a copy of `template`); returns its URL."""
    import psycopg

    dsn = server_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    return f"{server_url}/{name}"
