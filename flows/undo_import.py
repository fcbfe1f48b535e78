"""The `undo-import` flow: undo one import batch by batch, wired to `itemsheet.runs.undo_running`.

An undo job runs like an import: one attempt at a time (`running.begin`), a heartbeat,
batches committed with their progress, the same hooks (so a crashed run is resumed by the
reconciler through this deployment, a cancel ends the job `cancelled`, a failure
`failed`), and a `write-batches` task retried after a database hiccup.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_run
from prefect.states import Failed

from flows.job_hooks import (
    end_cancelled,
    on_cancellation,
    on_crashed,
    on_failure,
    progress_bar,
    writer_task,
)
from itemsheet.runs import running, undo_running


def _run_name() -> str:
    job_id = str(current_run.parameters.get("job_id", ""))
    return running.filename_of(job_id) or f"undo {job_id}"


@writer_task
def undo_batches(job_id: str, attempt: int, batches: int) -> bool:
    """Commit the remaining undo batches, showing progress as an artifact; False: cancelled."""
    return undo_running.write(uuid.UUID(job_id), attempt, batches, progress_bar("Items undone"))


# The hooks every job flow shares (`flows.job_hooks`).
@flow(
    name="undo-import",
    flow_run_name=_run_name,
    on_failure=[on_failure],
    on_crashed=[on_crashed],
    on_cancellation=[on_cancellation],
    log_prints=True,
)
def undo_import(job_id: str) -> dict[str, Any]:
    """Undo one import: delete the items it created and restore the values it overwrote."""
    logger = get_run_logger()
    key = uuid.UUID(job_id)
    run_id = uuid.UUID(current_run.id) if current_run.id else None
    attempt = running.begin(key, run_id)
    if attempt is None:
        logger.info("job %s has already ended; nothing to do", job_id)
        return running.view(key).model_dump(mode="json")
    with running.heartbeat(key, attempt):
        if (batches := undo_running.plan(key)) is None:
            reason = running.view(key).error or "the import cannot be undone"
            logger.warning("job %s failed: %s", job_id, reason)
            return Failed(message=reason)  # type: ignore[return-value]
        if not undo_batches(job_id, attempt, batches):
            return end_cancelled(key)
        done = undo_running.complete(key)
    return done.model_dump(mode="json")
