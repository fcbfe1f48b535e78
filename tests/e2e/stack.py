"""Start `importer up` as a user would, on free ports and a private data dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningStack:
    """Where the started stack answers."""

    api: str
    prefect_api: str
    data_dir: Path
    log: Path
    env: dict[str, str]


@contextmanager
def running_stack(data_dir: Path, **settings: str) -> Iterator[RunningStack]:
    """`importer up` with its own Prefect server; stopped with SIGINT like Ctrl-C."""
    port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "IMPORTER_"))}
    env |= {
        "IMPORTER_DATA_DIR": str(data_dir),
        "IMPORTER_PORT": str(port),
        "IMPORTER_PREFECT_PORT": str(prefect_port),
        **{f"IMPORTER_{k.upper()}": v for k, v in settings.items()},
    }
    log = data_dir.parent / "stack.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while b"ready" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"importer up did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        prefect_api = f"http://127.0.0.1:{prefect_port}/api"
        env = env | {"PREFECT_API_URL": prefect_api}
        yield RunningStack(api, prefect_api, data_dir, log, env)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 120) -> dict:
    """Poll a job's progress until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/excel/import/{job_id}/progress").json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")
        time.sleep(0.2)
