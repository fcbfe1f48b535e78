"""Spares forked from the worker's template process (`deployments.forks`), for real.

The template imports Prefect and starts no thread; each spare is a fork of it that imports
the rest and starts its parse child, then waits for a run. A real run in a forked spare,
its kill -9 and its cancel are the stack tests' (`tests/e2e/test_crashes.py`); here the
spares' life: forked, ready, ended, told apart, and what happens when the template dies.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from deployments.forks import ForkedSpare
from deployments.worker import Spare, SparePool

pytestmark = pytest.mark.subprocess

TIMEOUT_S = 60


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, f"not reached in {TIMEOUT_S} s: {what}"
        await anyio.sleep(0.02)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if parent_of(int(entry.name)) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


async def ended(spare: Spare) -> int:
    with anyio.fail_after(TIMEOUT_S):
        return await spare.process.wait()


def test_spares_are_forks_of_one_template_each_with_its_parse_child(tmp_path: Path) -> None:
    async def test() -> None:
        async with SparePool(2, tmp_path) as pool:
            assert await pool.wait_ready(TIMEOUT_S)
            assert pool.forks is not None and pool.forks.usable
            template = pool.forks.process
            assert template is not None
            await until(lambda: pool.ready_count() == 2, "both spares ready")
            spares = [s.process for s in pool._spares]
            assert all(isinstance(p, ForkedSpare) for p in spares)
            # Each spare is its own process, a child of the template, not of the worker.
            assert len({p.pid for p in spares}) == 2
            assert {parent_of(p.pid) for p in spares} == {template.pid}
            # ... and has started its parse child ahead of the run, as a started spare does.
            for process in spares:
                await until(lambda p=process: bool(children_of(p.pid)), "a spare's parse child")

    anyio.run(test)


def test_a_forked_spare_ends_with_its_input_or_reports_the_signal_that_killed_it(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        async with SparePool(2, tmp_path) as pool:
            await until(lambda: pool.ready_count() == 2, "both spares ready")
            first, second = pool.take({}), pool.take({})
            assert first is not None and second is not None
            assert first.process.stdin is not None
            await first.process.stdin.aclose()
            assert await ended(first) == 0
            second.process.kill()
            # Prefect reports a run whose process ended like this as crashed.
            assert await ended(second) == -signal.SIGKILL
            # Taken spares are replaced by new forks.
            await until(lambda: pool.ready_count() == 2, "the pool refilled")

    anyio.run(test)


def test_a_run_finding_no_spare_gets_one_forked_at_once(tmp_path: Path) -> None:
    async def test() -> None:
        async with SparePool(0, tmp_path) as pool:
            assert await pool.wait_ready(TIMEOUT_S)  # no spares: up at once
            # Nothing is prepared ahead: the first run starts the template.
            assert pool.forks is None
            spare = await pool.fork_now({})
            assert spare is not None and isinstance(spare.process, ForkedSpare)
            assert pool.forks is not None and pool.forks.usable
            assert parent_of(spare.process.pid) == pool.forks.process.pid  # type: ignore[union-attr]
            # A run setting what the template was not started with gets no fork.
            assert await pool.fork_now({"IMPORTER_BATCH_SIZE": "7"}) is None
            assert spare.process.stdin is not None
            await spare.process.stdin.aclose()
            assert await ended(spare) == 0

    anyio.run(test)


def test_when_the_template_dies_its_spares_stop_and_spares_start_as_interpreters(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        async with SparePool(1, tmp_path) as pool:
            await until(lambda: pool.ready_count() == 1, "a forked spare ready")
            assert pool.forks is not None and pool.forks.process is not None
            (forked,) = pool._spares
            os.kill(pool.forks.process.pid, signal.SIGKILL)
            # Its end can no longer be told, so it is stopped (a run in it would be
            # reported crashed and resumed, as after any kill).
            assert await ended(forked) == -signal.SIGKILL
            assert not pool.forks.usable
            pool.refill()
            await until(lambda: pool.ready_count() == 1, "a spare started as an interpreter")
            (started,) = pool._spares
            assert not isinstance(started.process, ForkedSpare)

    anyio.run(test)


def test_a_stopped_pool_leaves_neither_template_nor_spares(tmp_path: Path) -> None:
    async def test() -> list[int]:
        async with SparePool(2, tmp_path) as pool:
            await until(lambda: pool.ready_count() == 2, "both spares ready")
            assert pool.forks is not None and pool.forks.process is not None
            pids = [pool.forks.process.pid, *(s.process.pid for s in pool._spares)]
            pids += [c for s in pool._spares for c in children_of(s.process.pid)]
        return pids

    pids = anyio.run(test)
    deadline = time.monotonic() + TIMEOUT_S
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if not gone(p)] == []
