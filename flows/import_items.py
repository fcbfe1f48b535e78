"""The `import-items` flow: its tasks, wired to the steps in `itemsheet.runs.running`.

A run loads and validates the job's file (`load-sheet`), writes it batch by batch
(`write-batches`) while it beats, and ends the job. What each step does, and what a run
that ends abnormally makes of its job (`itemsheet.jobs.recovery.after_run`), is decided outside
this module; here are only the Prefect parts: tasks, artifacts, states, the review's pause.
The writer task and the hooks it shares with the undo flow are in `flows.job_hooks`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.exceptions import Pause
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.input.actions import read_flow_run_input
from prefect.input.run_input import keyset_from_paused_state
from prefect.runtime import flow_run as current_run
from prefect.states import Failed, Paused, Running
from prefect.utilities.engine import propose_state_sync

from db.models import JobStatus
from flows.job_hooks import (
    on_cancellation,
    on_crashed,
    on_failure,
    progress_bar,
    run_cancelled,
    writer_task,
)
from itemsheet.jobs.review import ReviewAnswer, pause_key
from itemsheet.runs import running
from itemsheet.sheet.markdown import md_text
from orchestration.answers import apply_in_run
from orchestration.events import job_page_url
from settings import get_settings


def _run_name() -> str:
    job_id = str(current_run.parameters.get("job_id", ""))
    filename = running.filename_of(job_id)
    return f"import {filename or job_id}"


@task(name="load-sheet", cache_policy=NO_CACHE)
def load_sheet(job_id: str, attempt: int) -> int | None:
    """Parse and validate the job's file; the number of batches, or None: job failed."""
    return running.load(uuid.UUID(job_id), attempt)


@writer_task
def write_batches(job_id: str, attempt: int, batches: int) -> bool:
    """Commit the remaining batches, showing progress as an artifact; False: cancelled."""
    return running.write(uuid.UUID(job_id), attempt, batches, progress_bar("Rows committed"))


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


# How often a run held for its review looks whether it was resumed.
HOLD_LOOK_S = 0.25


class ReviewInput(RunInput, ReviewAnswer):
    """The answer to an import's review: the form the Prefect UI shows at "Resume" (the
    fields, and what they say, are `ReviewAnswer`'s)."""


def _wait_for_review(key: uuid.UUID, *, previewed_here: bool = False) -> ReviewAnswer:
    """Wait for the review's answer: first paused in this process for
    `IMPORTER_REVIEW_HOLD_S` (`_hold`), then suspended; the answer once resumed.

    `previewed_here`: this process made the preview, whose artifact it attaches once the
    job shows `awaiting_review` (the person waits for that, not for the artifact).

    Suspending ends this process (Prefect's `Pause`, once the run is Suspended): a waiting
    review holds no worker and no process. The job shows `awaiting_review` only once the
    run is paused or suspended, so an answer always finds a run to resume. The run that
    resumes calls this again with the same round, and Prefect hands back the answer given
    at "Resume" (the API gives it that way too).
    """
    pending = running.view(key)
    settings = get_settings()
    # Prefect's own expiry (where its service runs) comes after ours, which ends both.
    timeout_s = int(settings.review_ttl_h * 3600) + 3600
    form = ReviewInput.with_initial_data(description=running.preview_text(key))
    unshown = previewed_here

    def show_preview() -> None:
        nonlocal unshown
        if unshown:
            unshown = False
            _show_preview(key)

    if settings.review_hold_s > 0:
        held = _hold(
            key, form, pending.review_round, settings.review_hold_s, timeout_s, show_preview
        )
        if held is not None:
            return held
    show_preview()
    try:
        answer = suspend_flow_run(
            wait_for_input=form, key=pause_key(pending.review_round), timeout=timeout_s
        )
    except Pause:
        running.await_review(key, run_ended=False)
        raise
    assert answer is not None
    return ReviewAnswer.model_validate(answer.to_form())


def _hold(
    key: uuid.UUID,
    form: type[ReviewInput],
    round_: int,
    hold_s: float,
    timeout_s: int,
    announced: Callable[[], None],
) -> ReviewAnswer | None:
    """Wait paused in this process, at most `hold_s`, for the answer: the answer, or
    None once the run is running again without one (it then suspends). A run of another
    job that waits for a worker slot ends the wait early: a held review must not keep
    imports waiting for its slot.

    The pause is Prefect's own (the UI shows the run Paused, with the form at "Resume");
    its expiry is the suspension's, so the run may leave it itself: it proposes Running
    and, unless an answer came meanwhile, suspends. A run resumed after that suspension
    finds this pause fired already and goes straight on to the suspension's answer.
    """
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    run_id = context.flow_run.id
    paused: State[Any] = Paused(
        timeout_seconds=timeout_s, reschedule=False, pause_key=f"{pause_key(round_)}-held"
    )
    keyset = keyset_from_paused_state(paused)
    paused.state_details.run_input_keyset = {str(k): v for k, v in keyset.items()}
    with get_client(sync_client=True) as client:
        state = propose_state_sync(client, paused, flow_run_id=run_id)
        if not state.is_paused():  # fired before: this run was resumed after suspending
            return None
        form.save(keyset)
        running.await_review(key, run_ended=False)
        announced()
        deadline = time.monotonic() + hold_s
        while True:
            time.sleep(HOLD_LOOK_S)
            shown = client.read_flow_run(run_id).state
            if shown is not None and shown.is_running():
                # Resumed: with the answer, or with the form left as it is (its defaults).
                answer: Any = form.load(keyset, flow_run_id=run_id)  # sync here
                return ReviewAnswer.model_validate(answer.to_form())
            if shown is None or shown.is_final():
                break
            if time.monotonic() < deadline and not running.slot_wanted(key):
                continue
            if shown.is_paused():
                # Nobody answered in time, or another import waits for this worker slot:
                # give it back (an answer given meanwhile is read below), then suspend.
                propose_state_sync(client, Running(), flow_run_id=run_id)
                break
            if time.monotonic() > deadline + HOLD_LOOK_S * 240:
                break  # cancelling, and not ended by its worker after a minute
    given: Any = read_flow_run_input(keyset["response"], flow_run_id=run_id)
    if not isinstance(given, dict):
        return None
    return ReviewAnswer.model_validate(form(**given).to_form())


@flow(
    name="import-items",
    flow_run_name=_run_name,
    on_failure=[on_failure],
    on_crashed=[on_crashed],
    on_cancellation=[on_cancellation],
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
            _show_preview(key)
            get_run_logger().info("job %s awaits its review", job_id)
            return running.await_review(key, run_ended=True).model_dump(mode="json")
        # Suspends unless answered soon: this process then ends.
        apply_in_run(key, _wait_for_review(key, previewed_here=True))


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
        return run_cancelled(key)
    if end is running.End.REVIEW:
        return None  # its preview is shown as it waits (`_wait_for_review`)
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
