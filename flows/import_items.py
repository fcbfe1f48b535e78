"""The `import-items` flow: its tasks and hooks, wired to the steps in `itemsheet.running`.

A run loads and validates the job's file (`load-sheet`), writes it batch by batch
(`write-batches`) while it beats, and ends the job. What each step does, and what a run
that ends abnormally makes of its job (`itemsheet.recovery.after_run`), is decided outside
this module; here are only the Prefect parts: tasks, retries, artifacts, states, hooks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.context import FlowRunContext
from prefect.exceptions import Pause
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, Failed
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from db.models import JobStatus
from itemsheet import running
from itemsheet.errors import SheetError
from itemsheet.markdown import md_text
from itemsheet.recovery import CANCELLED_REASON, RunEnd, after_run
from itemsheet.review import ReviewAnswer, pause_key
from orchestration.answers import apply_in_run
from orchestration.events import job_page_url
from settings import get_settings

WRITE_RETRY_DELAYS_S: list[float] = [1, 2, 4, 8]


def _run_name() -> str:
    job_id = str(current_run.parameters.get("job_id", ""))
    filename = running.filename_of(job_id)
    return f"import {filename or job_id}"


@task(name="load-sheet", cache_policy=NO_CACHE)
def load_sheet(job_id: str, attempt: int) -> int | None:
    """Parse and validate the job's file; the number of batches, or None: job failed."""
    return running.load(uuid.UUID(job_id), attempt)


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


@writer_task
def write_batches(job_id: str, attempt: int, batches: int) -> bool:
    """Commit the remaining batches, showing progress as an artifact; False: cancelled."""
    return running.write(uuid.UUID(job_id), attempt, batches, progress_bar("Rows committed"))


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


def _cancelled(key: uuid.UUID) -> dict[str, Any]:
    """An undo's end when cancelled between batches: the job cancelled, the run too."""
    running.finish(key, JobStatus.CANCELLED, reason=CANCELLED_REASON)
    return _run_cancelled(key)


def _run_cancelled(key: uuid.UUID) -> dict[str, Any]:
    get_run_logger().info("job %s was cancelled between batches", key)
    return Cancelled(message=CANCELLED_REASON)  # type: ignore[return-value]


def _ended(key: uuid.UUID) -> dict[str, Any]:
    """The run's result for a job it did not carry on: failed ones end the run Failed."""
    shown = running.view(key)
    if shown.status is JobStatus.FAILED:
        return Failed(message=shown.error or "the import failed")  # type: ignore[return-value]
    return shown.model_dump(mode="json")


def _show_preview(key: uuid.UUID) -> None:
    """The preview as a markdown artifact on the run (a courtesy, like the progress bar)."""
    try:
        create_markdown_artifact(
            markdown=running.preview_text(key), key="import-preview", description="Review"
        )
    except Exception as exc:
        get_run_logger().warning("could not attach the preview to the run: %s", exc)


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


def _on_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    _settle(flow_run, state, RunEnd.FAILED)


def _on_crashed(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    _settle(flow_run, state, RunEnd.CRASHED)


def _on_cancellation(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    _settle(flow_run, state, RunEnd.CANCELLED)


class ReviewInput(RunInput, ReviewAnswer):
    """The answer to an import's review: the form the Prefect UI shows at "Resume" (the
    fields, and what they say, are `ReviewAnswer`'s)."""


def _wait_for_review(key: uuid.UUID) -> ReviewAnswer:
    """Suspend the run until its review is answered; the answer once resumed.

    The first call ends this process (Prefect's `Pause`, once the run is Suspended): a
    waiting review holds no worker and no process. Only then does the job show
    `awaiting_review`, so an answer always finds a run to resume. The run that resumes
    calls this again with the same key, and Prefect hands back the answer given at
    "Resume" (the API gives it that way too).
    """
    pending = running.view(key)
    ttl_s = int(get_settings().review_ttl_h * 3600)
    form = ReviewInput.with_initial_data(description=running.preview_text(key))
    try:
        # Prefect's own expiry (where its service runs) comes after ours, which ends both.
        answer = suspend_flow_run(
            wait_for_input=form, key=pause_key(pending.review_round), timeout=ttl_s + 3600
        )
    except Pause:
        running.await_review(key, run_ended=False)
        raise
    assert answer is not None
    return ReviewAnswer.model_validate(answer.to_form())


@flow(
    name="import-items",
    flow_run_name=_run_name,
    on_failure=[_on_failure],
    on_crashed=[_on_crashed],
    on_cancellation=[_on_cancellation],
    log_prints=True,
)
def import_items(job_id: str) -> dict[str, Any]:
    """Import one job's file: load and validate it, then write it batch by batch.

    A job imported with review is first previewed (counted, nothing written); the run
    then suspends until a person answers (`_wait_for_review`), and carries on from here.
    """
    key = uuid.UUID(job_id)
    context = FlowRunContext.get()
    deployed = context is not None and context.flow_run is not None
    deployed = deployed and context.flow_run.deployment_id is not None  # type: ignore[union-attr]
    while True:
        if running.view(key).status is JobStatus.AWAITING_REVIEW:
            # Resumed from the Prefect UI or by the API: the answer (the API's own is
            # already applied; applying it again does nothing).
            apply_in_run(key, _wait_for_review(key))
        outcome = _attempt(key)
        if outcome is not None:
            return outcome
        if not deployed:  # run in its caller's process, which asks the person itself
            get_run_logger().info("job %s awaits its review", job_id)
            return running.await_review(key, run_ended=True).model_dump(mode="json")
        apply_in_run(key, _wait_for_review(key))  # suspends: this process ends


def _attempt(key: uuid.UUID) -> dict[str, Any] | None:
    """One pass at the job (`running.attempt`, through this flow's tasks): its result, or
    None when it now awaits its review."""
    logger = get_run_logger()
    job_id = str(key)
    run_id = uuid.UUID(current_run.id) if current_run.id else None
    end, shown = running.attempt(
        key,
        run_id,
        load=lambda job, attempt: load_sheet(str(job), attempt),
        write=lambda job, attempt, batches: write_batches(str(job), attempt, batches),
    )
    if end is running.End.ENDED:
        logger.info("job %s has already ended; nothing to do", job_id)
        return _ended(key)
    if end is running.End.FAILED:
        reason = shown.error or "the file cannot be imported"
        logger.warning("job %s failed: %s", job_id, reason)
        return Failed(message=reason)  # type: ignore[return-value]
    if end is running.End.CANCELLED:
        return _run_cancelled(key)
    if end is running.End.REVIEW:
        _show_preview(key)
        return None
    filename, table = running.summary(key)
    page = job_page_url(key, get_settings().public_base_url())
    table.append({"measure": "job page", "value": page})
    try:
        create_table_artifact(
            table=table,
            key="import-summary",
            description=f"Import of {md_text(filename)}: [job page]({page})",
        )
    except Exception as exc:  # the job has completed; the summary table is a courtesy
        logger.warning("could not attach the summary to the run: %s", exc)
    return shown.model_dump(mode="json")
