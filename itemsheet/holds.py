"""A pause point between two batches, for tests that must act while an import is mid-way.

Off unless `IMPORTER_TEST_HOLD_DIR` is set. A test arms a gate by writing a file named
after the upload's file name, holding a row count; an import of that file that has
committed at least that many rows stops before its next batch, outside any transaction and
still beating, writes `<name>.held` (its pid) and waits until the gate file is gone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.02


def hold_if_asked(
    hold_dir: Path | None,
    filename: str,
    committed_rows: int,
    on_wait: Callable[[], None] = lambda: None,
) -> None:
    """Wait here while a gate for `filename` is armed at or below `committed_rows`;
    `on_wait` is called as it waits (a held import is alive, not hung)."""
    if hold_dir is None:
        return
    gate = hold_dir / filename
    try:
        threshold = int(gate.read_text().strip() or "0")
    except (OSError, ValueError):
        return
    if committed_rows < threshold:
        return
    marker = hold_dir / f"{filename}.held"
    # Written whole under another name, then renamed: a test that sees the marker can
    # read the pid at once (it once read an empty file, caught between create and write).
    partial = hold_dir / f"{filename}.held.{os.getpid()}"
    partial.write_text(str(os.getpid()))
    partial.replace(marker)
    try:
        while gate.exists():
            on_wait()
            time.sleep(POLL_S)
    finally:
        marker.unlink(missing_ok=True)
