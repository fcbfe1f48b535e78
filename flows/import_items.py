"""The `import-items` flow: load and validate a stored file, then write it batch by batch."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, Failed
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from db.models import JobStatus, OnError
from db.repository import get_job, job_view, list_row_errors
from db.session import session_scope
from itemsheet.child import ChildLimits, prepare_in_child
from itemsheet.errors import SheetError
from itemsheet.formats import PackageLimits
from itemsheet.holds import hold_if_asked
from itemsheet.importing import (
    CancelRequested,
    apply_batch,
    begin_attempt,
    finish_job,
    record_abort,
    record_summary,
)
from itemsheet.prepare import read_rows
from itemsheet.recovery import beat, mark_interrupted, take_writer_turn
from itemsheet.storage import fetch_local
from itemsheet.warm import lower_priority
from settings import Settings, get_settings

# Prefect's artifact API writes to its database: the bar moves at most once a second.
ARTIFACT_INTERVAL_S = 1.0
# A pause between two batch transactions, so a writer waiting for SQLite's write lock (an
# upload's job insert) gets it between them instead of after the whole import (0.2 s per
# million rows).
BATCH_GAP_S = 0.002
CANCELLED_REASON = "the import was cancelled; rows committed before that are kept"
WRITE_RETRY_DELAYS_S: list[float] = [1, 2, 4, 8]
WRITER_TURN_POLL_S = 0.5
INTERRUPTED_REASON = "the run carrying out the import stopped ({why}); it resumes automatically"


def rows_path(settings: Settings, job_id: str, attempt: int) -> Path:
    """Where an attempt's validated rows wait between the two tasks.

    One file per attempt: a stale attempt must never read or remove a newer one's rows.
    """
    return settings.work_dir / f"{job_id}.{attempt}.arrow"


def _forget_rows(job_id: str) -> None:
    """Remove every attempt's rows of a job that has ended."""
    for path in get_settings().work_dir.glob(f"{job_id}.*.arrow"):
        path.unlink(missing_ok=True)


def _run_name() -> str:
    job_id = current_run.parameters.get("job_id", "")
    try:
        with session_scope(write=False) as session:
            job = get_job(session, uuid.UUID(str(job_id)))
    except ValueError:
        job = None
    return f"import {job.filename}" if job else f"import {job_id}"


@task(name="load-sheet", cache_policy=NO_CACHE)
def load_sheet(job_id: str, attempt: int) -> int | None:
    """Parse and validate the job's file in a child process; return the number of batches.

    A file that cannot be imported is not an error of the run: the job is failed with the
    one-line reason here and None returned, so the user sees the reason, not a traceback,
    and the run is not retried.
    """
    settings = get_settings()
    key = uuid.UUID(job_id)
    with session_scope(write=False) as session:
        job = get_job(session, key)
        assert job is not None
        file_uri, filename, sheet = job.file_uri, job.filename, job.sheet
        on_error, batch_size = job.on_error, job.batch_size
    out = rows_path(settings, job_id, attempt)
    try:
        summary = prepare_in_child(
            fetch_local(file_uri, settings.work_dir),
            out,
            filename=filename,
            sheet=sheet,
            package=PackageLimits(
                max_uncompressed_bytes=settings.max_uncompressed_bytes,
                max_compression_ratio=settings.max_compression_ratio,
                max_entries=settings.max_zip_entries,
                max_cells=settings.max_cells,
            ),
            limits=ChildLimits(settings.parse_timeout_s, settings.parse_memory_mib * 2**20),
        )
    except SheetError as exc:
        with session_scope() as session:
            finish_job(session, key, JobStatus.FAILED, reason=exc.reason)
        return None
    with session_scope() as session:
        record_summary(session, key, summary)
        if on_error == OnError.ABORT and summary.invalid_rows:
            reason = record_abort(session, key, read_rows(out))
            finish_job(session, key, JobStatus.FAILED, reason=reason)
            return None
    return math.ceil(summary.total_rows / batch_size)


def _transient(task: Any, task_run: Any, state: State) -> bool:
    """Retry the writer after a database hiccup (lost connection, locked, restarting)."""
    try:
        state.result()
    except (OperationalError, InterfaceError, DisconnectionError):
        return True
    except Exception:
        return False
    return False


@task(
    name="write-batches",
    cache_policy=NO_CACHE,
    retries=len(WRITE_RETRY_DELAYS_S),
    retry_delay_seconds=WRITE_RETRY_DELAYS_S,
    retry_condition_fn=_transient,
)
def write_batches(job_id: str, attempt: int, batches: int) -> bool:
    """Commit each remaining batch with its row errors and progress in one transaction.

    Returns False when the job was cancelled between batches. A retry starts after the
    last committed batch, so nothing is written twice.
    """
    settings = get_settings()
    key = uuid.UUID(job_id)
    with session_scope(write=False) as session:
        job = get_job(session, key)
        assert job is not None
        start, size, total = job.last_batch + 1, job.batch_size, job.total_rows or 0
        filename = job.filename
    rows = read_rows(rows_path(settings, job_id, attempt))
    artifact = create_progress_artifact(
        progress=100.0 * min((start - 1) * size, total) / max(total, 1),
        description=f"Rows committed of {total:,}",
    )
    assert isinstance(artifact, uuid.UUID)
    try:
        _wait_for_writer_turn(key, attempt)
    except CancelRequested:
        return False
    shown = time.monotonic()
    for batch_no in range(start, batches + 1):
        hold_if_asked(settings.test_hold_dir, filename, min((batch_no - 1) * size, total))
        batch = rows.slice((batch_no - 1) * size, size)
        try:
            with session_scope() as session:
                apply_batch(session, key, attempt=attempt, batch_no=batch_no, rows=batch)
        except CancelRequested:
            return False
        time.sleep(BATCH_GAP_S)
        if time.monotonic() - shown >= ARTIFACT_INTERVAL_S or batch_no == batches:
            update_progress_artifact(
                artifact_id=artifact, progress=100.0 * min(batch_no * size, total) / max(total, 1)
            )
            shown = time.monotonic()
    return True


def _wait_for_writer_turn(job_id: uuid.UUID, attempt: int) -> None:
    """Wait while another import writes items, so concurrent imports run one after the other."""
    while True:
        with session_scope() as session:
            if take_writer_turn(session, job_id, attempt=attempt):
                return
        time.sleep(WRITER_TURN_POLL_S)


@contextmanager
def _heartbeat(job_id: uuid.UUID, attempt: int) -> Iterator[None]:
    """Beat for `attempt` every few seconds, the long parse included, until the block ends."""
    stop = threading.Event()
    interval = get_settings().heartbeat_s

    def run() -> None:
        while not stop.wait(interval):
            try:
                with session_scope() as session:
                    alive = beat(session, job_id, attempt=attempt)
            except Exception:  # the database is away for a moment; beat again later
                alive = True
            if not alive:
                return  # a newer attempt owns the job, or it ended

    beater = threading.Thread(target=run, name=f"heartbeat-{job_id}", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join(timeout=interval + 5)


def _summarise(job_id: str) -> None:
    with session_scope(write=False) as session:
        job = get_job(session, uuid.UUID(job_id))
        assert job is not None
        view = job_view(job)
        errors = list_row_errors(session, job.id, limit=10)
    counts = ["total_rows", "created", "updated", "unchanged", "failed", "rows_per_s", "elapsed_s"]
    table: list[dict[str, Any]] = [{"measure": k, "value": view[k]} for k in counts]
    table += [{"measure": f"row {e['row']}", "value": e["message"]} for e in errors]
    create_table_artifact(
        table=table, key="import-summary", description=f"Import of {job.filename}"
    )


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


def _mark_failed(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    job_id = uuid.UUID(str(flow_run.parameters["job_id"]))
    with session_scope() as session:
        job = finish_job(
            session, job_id, JobStatus.FAILED, reason=_reason(state), flow_run_id=flow_run.id
        )
        owned = job is not None and job.flow_run_id == flow_run.id
    if owned:
        _forget_rows(str(job_id))


def _mark_interrupted(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """A crashed run (killed, its process died) is resumed, not failed: the reconciler
    starts a new run while attempts remain. A file that crashes the parser fails its job
    in `load-sheet` before this, so it is never retried."""
    if flow_run.deployment_id is None:
        # Run in its caller's own process (`importer import`, stopped with Ctrl-C): the
        # user is right there, so say so rather than wait for a worker to resume it.
        _mark_failed(flow, flow_run, state)
        return
    job_id = uuid.UUID(str(flow_run.parameters["job_id"]))
    why = " ".join((state.message or "crashed").split())[:200]
    with session_scope() as session:
        mark_interrupted(
            session,
            job_id,
            reason=INTERRUPTED_REASON.format(why=why.rstrip(".")),
            flow_run_id=flow_run.id,
        )


def _cancelled_by_user(job_id: uuid.UUID, flow_run_id: uuid.UUID) -> bool:
    """True for the API's or the Prefect UI's cancel; False for a worker shutting down.

    A runner that stops (SIGTERM) cancels its runs too, but leaves their state on the
    server `Running`; a cancel from the API or UI sets it `Cancelling` first.
    """
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        if job is not None and job.cancel_requested:
            return True
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
    except Exception:  # Prefect unreachable: nobody asked through it
        return False
    return run.state is not None and run.state.type in (StateType.CANCELLING, StateType.CANCELLED)


def _mark_cancelled(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    job_id = uuid.UUID(str(flow_run.parameters["job_id"]))
    if not _cancelled_by_user(job_id, flow_run.id):
        with session_scope() as session:
            mark_interrupted(
                session,
                job_id,
                reason=INTERRUPTED_REASON.format(why="its worker shut down"),
                flow_run_id=flow_run.id,
            )
        return
    with session_scope() as session:
        finish_job(
            session, job_id, JobStatus.CANCELLED, reason=CANCELLED_REASON, flow_run_id=flow_run.id
        )


@flow(
    name="import-items",
    flow_run_name=_run_name,
    on_failure=[_mark_failed],
    on_crashed=[_mark_interrupted],
    on_cancellation=[_mark_cancelled],
    log_prints=True,
)
def import_items(job_id: str) -> dict[str, Any]:
    """Import one job's file: load and validate it, then write it batch by batch."""
    logger = get_run_logger()
    key = uuid.UUID(job_id)
    run_id = current_run.id
    # Imports are batch work: uploads and progress requests on the same machine come first.
    lower_priority(get_settings().import_nice)
    with session_scope() as session:
        attempt = begin_attempt(session, key, flow_run_id=uuid.UUID(run_id) if run_id else None)
    if attempt is None:
        logger.info("job %s has already ended; nothing to do", job_id)
        return _final_view(key)
    with _heartbeat(key, attempt):
        return _carry_out(job_id, attempt)


def _final_view(key: uuid.UUID) -> dict[str, Any]:
    with session_scope(write=False) as session:
        job = get_job(session, key)
        assert job is not None
        return job_view(job)


def _carry_out(job_id: str, attempt: int) -> dict[str, Any]:
    """Load the sheet, write its batches and end the job (the flow's body, while it beats)."""
    logger = get_run_logger()
    key = uuid.UUID(job_id)
    if (batches := load_sheet(job_id, attempt)) is None:
        _forget_rows(job_id)
        with session_scope(write=False) as session:
            refused = get_job(session, key)
            reason = refused.error if refused else None
        logger.warning("job %s failed: %s", job_id, reason)
        return Failed(message=reason or "the file cannot be imported")  # type: ignore[return-value]
    elif not write_batches(job_id, attempt, batches):
        with session_scope() as session:
            finish_job(session, key, JobStatus.CANCELLED, reason=CANCELLED_REASON)
        logger.info("job %s was cancelled between batches", job_id)
        _forget_rows(job_id)
        return Cancelled(message=CANCELLED_REASON)  # type: ignore[return-value]
    else:
        with session_scope() as session:
            finish_job(session, key, JobStatus.COMPLETED)
        _forget_rows(job_id)
        _summarise(job_id)
    return _final_view(key)
