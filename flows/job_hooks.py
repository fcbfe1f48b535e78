"""What every job flow (an import's, an undo's) shares: the writer task, the progress bar,
the end of a cancelled run, and the hooks that settle a job when its run ends abnormally.

The hooks read only the run's `job_id`; what a run's end makes of its job is one rule for
all job flows (`itemsheet.jobs.recovery.after_run`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from prefect import Flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.states import Cancelled
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from db.models import JobStatus
from itemsheet.jobs.recovery import CANCELLED_REASON, RunEnd, after_run
from itemsheet.runs import running
from itemsheet.sheet.errors import SheetError

# Loaded for its listener, which sends the event of each job status change: every job flow
# loads this module, so none can forget it (`tests/orchestration/test_events.py`).
import orchestration.events  # noqa: F401  # isort: skip

WRITE_RETRY_DELAYS_S: list[float] = [1, 2, 4, 8]


def _transient(task: Any, task_run: Any, state: State) -> bool:
    """Retry the writer after a database hiccup (lost connection, locked, restarting)."""
    try:
        state.result()
    except (OperationalError, InterfaceError, DisconnectionError):
        return True
    except Exception:
        return False
    return False


# The task that commits a job's batches, an import's or an undo's: retried after a
# database hiccup, never cached (each call carries on from the job's last batch).
writer_task = task(
    name="write-batches",
    cache_policy=NO_CACHE,
    retries=len(WRITE_RETRY_DELAYS_S),
    retry_delay_seconds=WRITE_RETRY_DELAYS_S,
    retry_condition_fn=_transient,
)


def progress_bar(what: str) -> Callable[[float, int], None]:
    """`show(percent, total)` for a writer: one progress artifact on the run, made at the
    first call ("<what> of <total>") and moved on after each batch.

    The bar in the Prefect UI is a courtesy: the job's own progress is in the database, so
    an artifact call that fails is logged and the run goes on.
    """
    artifact: uuid.UUID | None = None

    def show(percent: float, total: int) -> None:
        nonlocal artifact
        try:
            if artifact is None:
                described = f"{what} of {total:,}"
                created = create_progress_artifact(progress=percent, description=described)
                assert isinstance(created, uuid.UUID)
                artifact = created
            else:
                update_progress_artifact(artifact_id=artifact, progress=percent)
        except Exception as exc:
            get_run_logger().warning("could not show progress in Prefect: %s", exc)

    return show


def end_cancelled(key: uuid.UUID) -> dict[str, Any]:
    """An undo's end when cancelled between batches: the job cancelled, the run too."""
    running.finish(key, JobStatus.CANCELLED, reason=CANCELLED_REASON)
    return run_cancelled(key)


def run_cancelled(key: uuid.UUID) -> dict[str, Any]:
    """A run's end for a job cancelled between its batches: the run Cancelled too."""
    get_run_logger().info("job %s was cancelled between batches", key)
    return Cancelled(message=CANCELLED_REASON)  # type: ignore[return-value]


def _reason(state: State) -> str:
    """A one-line reason for a failed or crashed run."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as lookup:  # the result may be unavailable; fall back to the message
        exc = lookup
    if isinstance(exc, SheetError):
        return exc.reason
    if isinstance(exc, BaseException):
        text = " ".join(str(exc).split())[:300]
        return f"the import stopped unexpectedly: {type(exc).__name__}: {text}".rstrip(": ")
    return " ".join((state.message or "the import stopped unexpectedly").split())[:300]


def _asked_to_cancel(job_id: uuid.UUID, flow_run_id: uuid.UUID) -> bool:
    """True for the API's or the Prefect UI's cancel; False for a worker shutting down.

    A runner that stops (SIGTERM) cancels its runs too, but leaves their state on the
    server `Running`; a cancel from the API or UI sets it `Cancelling` first.
    """
    if running.cancel_was_requested(job_id):
        return True
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
    except Exception:  # Prefect unreachable: nobody asked through it
        return False
    return run.state is not None and run.state.type in (StateType.CANCELLING, StateType.CANCELLED)


def _settle(flow_run: FlowRun, state: State, end: RunEnd) -> None:
    """A hook: what the run's abnormal end makes of its job (`recovery.after_run`)."""
    job_id = uuid.UUID(str(flow_run.parameters["job_id"]))
    asked = end is RunEnd.CANCELLED and _asked_to_cancel(job_id, flow_run.id)
    # A run from a deployment can be resumed by a worker; one run in its caller's own
    # process (`importer import`, stopped with Ctrl-C) cannot.
    outcome = after_run(end, deployed=flow_run.deployment_id is not None, asked_to_cancel=asked)
    shutdown = end is RunEnd.CANCELLED and not asked
    why = "its worker shut down" if shutdown else (state.message or "crashed")
    running.settle(job_id, flow_run.id, outcome, error=_reason(state), why=why)


def on_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """The `on_failure` hook of every job flow."""
    _settle(flow_run, state, RunEnd.FAILED)


def on_crashed(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """The `on_crashed` hook of every job flow."""
    _settle(flow_run, state, RunEnd.CRASHED)


def on_cancellation(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """The `on_cancellation` hook of every job flow."""
    _settle(flow_run, state, RunEnd.CANCELLED)
