"""Import modules ahead of time at low priority, while waiting for work.

A pre-started process (a worker's spare interpreter, a spare parse child) imports what
its work will need in a thread of nice 10: Linux gives each thread its own nice value, so
only these imports yield the CPU to running imports, and the work itself, on the main
thread, keeps normal priority. Work that arrives before the imports are done raises the
thread back to normal priority where the system allows it, and waits for them to finish
(two threads importing at once could see each other's half-initialised modules).
"""

from __future__ import annotations

import importlib
import os
import select
import threading
from collections.abc import Iterable
from contextlib import suppress
from typing import Protocol, TextIO

WARM_NICE = 10


class HasFileno(Protocol):
    """What `select` waits on: a file, a socket."""

    def fileno(self) -> int: ...


_POLL_S = 0.05


class Warming:
    """Imports `modules` in a background thread of low priority (`nice`), started at once."""

    def __init__(self, modules: Iterable[str], nice: int = WARM_NICE) -> None:
        self._modules = tuple(modules)
        self._nice = nice
        self._tid: int | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="warm-up", daemon=True)
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        self._tid = threading.get_native_id()
        with suppress(AttributeError, OSError):
            if self._nice:
                os.setpriority(os.PRIO_PROCESS, self._tid, self._nice)
        self._started.set()
        for name in self._modules:
            importlib.import_module(name)

    def _hurry(self) -> None:
        """Work is waiting: back to normal priority (where permitted) and finish."""
        if self._tid is not None:
            with suppress(AttributeError, OSError):
                os.setpriority(os.PRIO_PROCESS, self._tid, 0)
        self._thread.join()

    def until_done_or_work(self, source: TextIO) -> str | None:
        """Wait for the imports; a line arriving on `source` meanwhile hurries them, and is
        returned once they are done. None: done, and nothing arrived yet."""
        if self.until_done_or_readable(source):
            return source.readline()
        return None

    def until_done_or_readable(self, source: HasFileno) -> bool:
        """Wait for the imports, hurried once `source` has input (left unread); True if it
        had some before they were done."""
        while self._thread.is_alive():
            ready, _, _ = select.select([source], [], [], _POLL_S)
            if ready:
                self._hurry()
                return True
        self._thread.join()
        return False


def lower_priority(nice: int) -> None:
    """Run this thread (and the threads it starts) at `nice` or lower priority."""
    with suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
