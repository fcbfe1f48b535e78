"""`importer up` and its processes: nothing outlives it, and a stale stack is replaced.

Each test starts a stack of its own; those about stopping start it as a user does (its own
Prefect server, warm spares)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devtools.stack import running_stack
from itemsheet.sandbox.processes import group_alive

pytestmark = pytest.mark.stack


def wait_gone(groups: list[int], timeout: float = 60) -> list[int]:
    """The groups still alive after `timeout` (none, when all went)."""
    deadline = time.monotonic() + timeout
    while (alive := [g for g in groups if group_alive(g)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def test_killing_importer_up_with_sigkill_leaves_no_process_behind(tmp_path: Path) -> None:
    with running_stack(tmp_path / "var", spares=True) as stack:
        groups = json.loads((stack.data_dir / "stack.json").read_text())["groups"]
        assert set(groups) == {"prefect server", "worker", "api"}
        # The worst order: the Prefect server is gone before the worker hears of it, so the
        # worker's goodbye to the server can only fail (Prefect's client would retry it for
        # a minute).
        os.killpg(groups["prefect server"], signal.SIGKILL)
        os.kill(stack.pid, signal.SIGKILL)
        left = wait_gone(list(groups.values()))
        names = {pgid: name for name, pgid in groups.items()}
        assert left == [], f"still running after importer up was killed: {[names[g] for g in left]}"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{stack.api}/api/health", timeout=2)


def test_a_stack_whose_importer_up_died_is_replaced_by_the_next(
    tmp_path: Path, prefect_server: str
) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    # What a stack left where its processes could not be told (no parent-death signal):
    # a process group of its own, recorded under a dead owner.
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    (data_dir / "stack.json").write_text(
        json.dumps({"owner": dead_owner.pid, "groups": {"prefect server": leftover.pid}})
    )
    try:
        with running_stack(data_dir, prefect_api=prefect_server) as stack:
            assert leftover.wait(5) is not None  # stopped before the new stack started
            assert httpx.get(f"{stack.api}/api/health", timeout=10).json()["ready"] is True
            assert "stopped 1 process group(s) a killed `importer up` left" in (
                stack.log.read_text()
            )
    finally:
        if leftover.poll() is None:
            leftover.kill()


def test_sigint_stops_a_stack_started_with_sigint_ignored(tmp_path: Path) -> None:
    with running_stack(tmp_path / "var", sigint_ignored=True, spares=True) as stack:
        groups = list(json.loads((stack.data_dir / "stack.json").read_text())["groups"].values())
        started = time.monotonic()
        os.kill(stack.pid, signal.SIGINT)
        assert wait_gone(groups, timeout=30) == []
        stopped_in = time.monotonic() - started
    assert stopped_in < 30
    # Stopping is quiet: an operator's Ctrl-C shows no traceback from any process.
    assert "Traceback" not in stack.log.read_text()


def test_a_second_ctrl_c_while_the_stack_stops_does_not_cut_the_stop_short(
    tmp_path: Path, prefect_server: str
) -> None:
    with running_stack(tmp_path / "var", prefect_api=prefect_server) as stack:
        groups = list(json.loads((stack.data_dir / "stack.json").read_text())["groups"].values())
        os.kill(stack.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while b"stopping api" not in stack.log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(stack.pid, signal.SIGINT)  # while the API stops
        assert wait_gone(groups, timeout=30) == []
    # Every process was stopped in its turn, the worker after the API.
    assert "stopping worker ..." in stack.log.read_text()
