"""Functions other packages may have called before each batch a job writes.

A package that declares a function in the `importer.before_batch` entry-point group has it
called by the writer's loop before every batch of every import and undo, outside any
transaction, with a `BatchPoint`. A hook may look, log or wait (a throttle, a maintenance
window); while it waits it calls `point.keep_alive()` now and then, so the job's heartbeat
goes on and the reconciler does not take a waiting job for a dead one. The service itself
declares none, so the loop calls nothing. A hook that raises is logged and skipped: an
extension never fails an import.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

GROUP = "importer.before_batch"

logger = logging.getLogger("importer.hooks")


@dataclass(frozen=True)
class BatchPoint:
    """Where a job's writer stands: before `batch_no`, with `committed_rows` committed."""

    job_id: uuid.UUID
    filename: str
    batch_no: int
    committed_rows: int
    keep_alive: Callable[[], None]


Hook = Callable[[BatchPoint], object]


@functools.cache
def before_batch_hooks() -> tuple[Hook, ...]:
    """The hooks declared by installed packages, loaded once per process."""
    hooks: list[Hook] = []
    for entry in entry_points(group=GROUP):
        try:
            hooks.append(entry.load())
        except Exception:
            logger.warning("could not load the before-batch hook %s", entry.value, exc_info=True)
    return tuple(hooks)


def before_batch(point: BatchPoint) -> None:
    """Call every declared hook with `point`, in the order they were found."""
    for hook in before_batch_hooks():
        try:
            hook(point)
        except Exception:
            logger.warning("the before-batch hook %r failed", hook, exc_info=True)
