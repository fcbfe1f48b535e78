"""The page's sets of job statuses, written from `JobStatus` into `static/js/statuses.js`.

The page asks the same questions of a job's status as the server (has it ended? may it be
retried, undone?), so it takes the answers from the one place the server does: the
methods of `JobStatus`. The module is generated, so the page needs no request before it
can draw a job; `tests/api/test_statuses.py` checks that it is current. After a change to
the sets, write it again with `uv run python -m api.statuses`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from db.enums import JobStatus

MODULE = Path(__file__).resolve().parent / "static" / "js" / "statuses.js"

# The name each set has in the page, and the method of `JobStatus` it comes from.
SETS: dict[str, Callable[[], frozenset[JobStatus]]] = {
    "TERMINAL": JobStatus.terminal,
    "UNDER_WAY": JobStatus.under_way,
    "RETRYABLE": JobStatus.retryable,
    "UNDOABLE": JobStatus.undoable,
}


def statuses_module() -> str:
    """The text of `static/js/statuses.js`."""
    order = list(JobStatus)
    lines = [
        "// Generated from db.enums.JobStatus by `uv run python -m api.statuses`: do not edit.",
        "// The server's sets of statuses, so the page asks a job's status what it does.",
        "",
    ]
    for name, members in SETS.items():
        doc = " ".join((members.__doc__ or "").split())
        values = json.dumps([s.value for s in sorted(members(), key=order.index)])
        lines += [f"/** {doc} */", f"export const {name} = new Set({values});", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    MODULE.write_text(statuses_module())
    print(f"wrote {MODULE}")
