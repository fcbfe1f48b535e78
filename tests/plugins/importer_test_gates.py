"""The test harness's pause point between two batches, for tests that must act while an
import is mid-way. It reaches the processes the harness starts (stacks, workers, their
runs) as a `importer.before_batch` hook: `tests/plugins` is on their PYTHONPATH, and the
dist-info beside this module declares the entry point. Nothing of it is in the product.

Off unless `TEST_GATE_DIR` is set. A test arms a gate by writing a file named after the
upload's file name, holding a row count; an import of that file that has committed at
least that many rows stops before its next batch, outside any transaction and still
beating, writes `<name>.held` (its pid) and waits until the gate file is gone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

POLL_S = 0.02
DIR_VARIABLE = "TEST_GATE_DIR"


def hold_if_asked(point: Any) -> None:
    """Wait here while a gate for the point's file is armed at or below its committed rows
    (a `itemsheet.runs.batch_hooks.BatchPoint`); beating as it waits (alive, not hung)."""
    folder = os.environ.get(DIR_VARIABLE)
    if not folder:
        return
    gate = Path(folder) / point.filename
    try:
        threshold = int(gate.read_text().strip() or "0")
    except (OSError, ValueError):
        return
    if point.committed_rows < threshold:
        return
    marker = Path(folder) / f"{point.filename}.held"
    # Written whole under another name, then renamed: a test that sees the marker can
    # read the pid at once (it once read an empty file, caught between create and write).
    partial = Path(folder) / f"{point.filename}.held.{os.getpid()}"
    partial.write_text(str(os.getpid()))
    partial.replace(marker)
    try:
        while gate.exists():
            point.keep_alive()
            time.sleep(POLL_S)
    finally:
        marker.unlink(missing_ok=True)
