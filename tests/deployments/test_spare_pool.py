"""The worker's spares and the hand-over of a run, in-process, on stand-in interpreters.

These pools start spares as interpreters of their own (`forking=False`), as a worker does
where its fork server cannot fork; the forked spares are `test_fork_server.py`'s.

As Prefect's own worker tests replace the process a run starts (`anyio.open_process`),
these start a tiny `python -c` in place of `python -m deployments.spare` (it says `ready`
when the test lets it, and records the line a run hands it) and of `python -m
prefect.engine` (it records what it was started with): real processes, pipes and
signals, without Prefect's imports. A real spare carrying out a real run is
`tests/e2e/test_crashes.py`'s warm-start test.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.runner._process_manager import ProcessHandle

from deployments.worker import PER_RUN_PREFIX, Spare, SparePool, SpareStarter

pytestmark = pytest.mark.subprocess

# In place of `python -m deployments.spare`: says ready once `ready-<pid>` (or `all-ready`)
# exists, then writes the one line it is handed to `order-<pid>.json`; end of input ends it.
STAND_IN_SPARE = r"""
import os, sys, time
from pathlib import Path
here, pid = Path(sys.argv[1]), os.getpid()
(here / f"started-{pid}").touch()
try:
    os.remove(here / "die-before-ready")  # one spare dies, the next lives
    sys.exit(1)
except FileNotFoundError:
    pass
while not (here / f"ready-{pid}").exists() and not (here / "all-ready").exists():
    time.sleep(0.01)
sys.stdout.write("ready\n")
sys.stdout.flush()
line = sys.stdin.readline()
if line.strip():
    (here / f"order-{pid}.json").write_text(line)
"""
# In place of `python -m prefect.engine`: records its environment.
STAND_IN_ENGINE = r"""
import json, os, sys
from pathlib import Path
(Path(sys.argv[1]) / f"engine-{os.getpid()}.json").write_text(json.dumps(dict(os.environ)))
"""
TIMEOUT_S = 30


class StandIns:
    """What the stand-ins of one test were asked to start, and what they recorded."""

    def __init__(self, here: Path) -> None:
        self.here = here
        self.commands: list[list[str]] = []

    def started(self) -> list[int]:
        return sorted(int(p.name.split("-")[1]) for p in self.here.glob("started-*"))

    def let_ready(self, pid: int | None = None) -> None:
        (self.here / (f"ready-{pid}" if pid else "all-ready")).touch()

    def order(self, pid: int) -> dict[str, Any]:
        value = json.loads((self.here / f"order-{pid}.json").read_text())
        assert isinstance(value, dict)
        return value

    def engines(self) -> list[dict[str, str]]:
        return [json.loads(p.read_text()) for p in self.here.glob("engine-*.json")]


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIns]:
    here = tmp_path / "stand-ins"
    here.mkdir()
    found = StandIns(here)
    real_open_process = anyio.open_process

    async def open_stand_in(command: list[str], **kwargs: Any) -> anyio.abc.Process:
        found.commands.append(list(command))
        if command[1:3] == ["-m", "deployments.spare"]:
            command = [sys.executable, "-c", STAND_IN_SPARE, str(here), *command[3:]]
        elif command[1:3] == ["-m", "prefect.engine"]:
            command = [sys.executable, "-c", STAND_IN_ENGINE, str(here)]
        return await real_open_process(command, **kwargs)

    monkeypatch.setattr(anyio, "open_process", open_stand_in)
    yield found
    for pid in found.started():  # whatever a failed test left running
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run(test: Callable[[], Awaitable[None]]) -> None:
    anyio.run(test)


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, f"not reached in {TIMEOUT_S} s: {what}"
        await anyio.sleep(0.01)


def live(pids: list[int]) -> list[int]:
    """Those of `pids` that run (not gone, not a zombie)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


async def end(spare: Spare) -> None:
    """What the worker does with a spare it took but gives no run: end its input."""
    assert spare.process.stdin is not None
    await spare.process.stdin.aclose()
    await spare.process.wait()


def test_the_pool_fills_to_its_size_and_replaces_a_taken_spare_at_once(
    stand_ins: StandIns, tmp_path: Path
) -> None:
    async def test() -> None:
        async with SparePool(2, tmp_path, forking=False) as pool:
            await until(lambda: len(stand_ins.started()) == 2, "two spares started")
            assert pool.ready_count() == 0
            stand_ins.let_ready()
            await until(lambda: pool.ready_count() == 2, "two spares ready")
            first = stand_ins.started()
            # Each spare is the real command, started with the worker's environment.
            assert stand_ins.commands[0][1:3] == ["-m", "deployments.spare"]
            taken = pool.take({})
            assert taken is not None and taken.ready and taken.process.pid in first
            assert taken.env == dict(os.environ)
            # The replacement starts without waiting for a run to ask for it.
            await until(lambda: len(stand_ins.started()) == 3, "a replacement started")
            await until(lambda: pool.ready_count() == 2, "two spares ready again")
            await end(taken)
        # Leaving the pool ends the spares it still has.
        assert live(stand_ins.started()) == []

    run(test)


def test_a_dead_spare_gets_no_run_and_is_replaced(stand_ins: StandIns, tmp_path: Path) -> None:
    async def test() -> None:
        async with SparePool(2, tmp_path, forking=False) as pool:
            stand_ins.let_ready()
            await until(lambda: pool.ready_count() == 2, "two spares ready")
            dead, other = stand_ins.started()
            os.kill(dead, signal.SIGKILL)
            await until(lambda: pool.ready_count() == 1, "the killed spare seen dead")
            taken = pool.take({})
            assert taken is not None and taken.process.pid == other
            await until(lambda: len(live(stand_ins.started())) == 3, "two replacements")
            await until(lambda: pool.ready_count() == 2, "two spares ready again")
            await end(taken)

    run(test)


def test_a_spare_that_dies_while_warming_up_is_replaced(
    stand_ins: StandIns, tmp_path: Path
) -> None:
    async def test() -> None:
        (stand_ins.here / "die-before-ready").touch()
        stand_ins.let_ready()
        async with SparePool(1, tmp_path, forking=False) as pool:
            assert await pool.wait_ready(TIMEOUT_S)
            assert pool.ready_count() == 1
            dead, replacement = stand_ins.started()
            assert live([dead, replacement]) == [replacement]

    run(test)


def test_a_ready_spare_is_taken_before_one_warming_up_and_a_warming_one_before_none(
    stand_ins: StandIns, tmp_path: Path
) -> None:
    async def test() -> None:
        async with SparePool(2, tmp_path, forking=False) as pool:
            await until(lambda: len(stand_ins.started()) == 2, "two spares started")
            warming, ready = stand_ins.started()
            stand_ins.let_ready(ready)
            await until(lambda: pool.ready_count() == 1, "one spare ready")
            first = pool.take({})
            assert first is not None and first.process.pid == ready
            # No spare is ready now: the one warming up has a head start on a fresh start.
            second = pool.take({})
            assert second is not None and second.process.pid == warming and not second.ready
            stand_ins.let_ready()
            await end(first)
            await end(second)

    run(test)


def test_wait_ready_returns_once_one_spare_is_ready_and_at_once_without_spares(
    stand_ins: StandIns, tmp_path: Path
) -> None:
    async def test() -> None:
        async with SparePool(2, tmp_path, forking=False) as pool:
            assert not await pool.wait_ready(0.3)  # none ready yet: a worker would not be up
            await until(lambda: len(stand_ins.started()) == 2, "two spares started")
            stand_ins.let_ready(stand_ins.started()[1])
            assert await pool.wait_ready(TIMEOUT_S)
            assert pool.ready_count() == 1
            # While the worker started, its spares warmed up at normal priority; the one
            # that replaces a taken spare warms up at low priority, behind running imports.
            assert all(c[-2:] == ["--nice", "0"] for c in stand_ins.commands)
            taken = pool.take({})
            assert taken is not None
            await until(lambda: len(stand_ins.commands) == 3, "the taken spare replaced")
            await end(taken)
            assert "--nice" not in stand_ins.commands[2]
            stand_ins.let_ready()
        # IMPORTER_WARM_SPARES=0: the worker is up at once and starts no interpreter.
        async with SparePool(0, tmp_path, forking=False) as none:
            started = time.monotonic()
            assert await none.wait_ready(TIMEOUT_S)
            assert time.monotonic() - started < 1
            assert none.take({}) is None
        assert len(stand_ins.commands) == 3

    run(test)


def starter(pool: SparePool, tmp_path: Path, **job_env: str) -> SpareStarter:
    """The starter `ImporterWorker.run` makes for a run whose deployment sets `job_env`."""
    return SpareStarter(
        pool,
        env={**job_env, "PREFECT__FLOW_RUN_ID": "set by prefect"},
        job_env=job_env,
        cwd=tmp_path,
        control_channel=None,
        running={},
    )


async def start_run(start: SpareStarter, flow_run: FlowRun) -> tuple[ProcessHandle, bool]:
    """Start the run as Prefect's executor does; (its process, listed while it ran)."""
    async with anyio.create_task_group() as group:
        handle: ProcessHandle = await group.start(start.start, flow_run)
        listed = start.running.get(handle.raw_process) == flow_run.id  # type: ignore[index]
    assert start.running == {}, "an ended run is still listed as running"
    return handle, listed


def test_a_run_is_handed_to_a_spare_with_its_per_run_environment(
    stand_ins: StandIns, tmp_path: Path
) -> None:
    async def test() -> None:
        async with SparePool(1, tmp_path, forking=False) as pool:
            stand_ins.let_ready()
            assert await pool.wait_ready(TIMEOUT_S)
            (spare,) = stand_ins.started()
            flow_run = FlowRun(flow_id=uuid.uuid4())
            handle, listed = await start_run(starter(pool, tmp_path), flow_run)
            assert handle.pid == spare and listed
            assert handle.returncode == 0
            order = stand_ins.order(spare)
            assert order["flow_run_id"] == str(flow_run.id)
            env = order["env"]
            assert env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
            # The executor runs crashed and cancellation hooks, not the engine.
            assert env["PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS"] == "false"
            # Only what differs per run is sent: the spare has the rest already.
            assert all(k.startswith(PER_RUN_PREFIX) for k in env)
            assert stand_ins.engines() == []
            await until(lambda: pool.ready_count() == 1, "the next spare ready")

    run(test)


@pytest.mark.parametrize("spares", [0, 1], ids=["no spares", "spare of another environment"])
def test_without_a_fitting_spare_a_run_gets_a_fresh_prefect_engine(
    stand_ins: StandIns, tmp_path: Path, spares: int
) -> None:
    async def test() -> None:
        async with SparePool(spares, tmp_path, forking=False) as pool:
            stand_ins.let_ready()
            assert await pool.wait_ready(TIMEOUT_S)
            flow_run = FlowRun(flow_id=uuid.uuid4())
            start = starter(pool, tmp_path, IMPORTER_BATCH_SIZE="7")
            handle, listed = await start_run(start, flow_run)
            assert listed and handle.pid not in stand_ins.started()
            assert stand_ins.commands[-1] == [sys.executable, "-m", "prefect.engine"]
            (engine,) = stand_ins.engines()
            assert engine["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
            assert engine["IMPORTER_BATCH_SIZE"] == "7"
            # The spare stays for a run it fits.
            assert pool.ready_count() == spares
            assert not list(stand_ins.here.glob("order-*"))

    run(test)
