"""The `import-items` flow: load and validate a stored file, then write it batch by batch."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun, State
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, Failed
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from db.models import JobStatus, OnError
from db.repository import get_job, job_view, list_row_errors
from db.session import session_scope
from itemsheet.child import ChildLimits, prepare_in_child
from itemsheet.errors import SheetError
from itemsheet.formats import PackageLimits
from itemsheet.importing import (
    CancelRequested,
    apply_batch,
    begin_attempt,
    finish_job,
    record_abort,
    record_summary,
)
from itemsheet.prepare import read_rows
from itemsheet.storage import fetch_local
from settings import Settings, get_settings

ARTIFACT_INTERVAL_S = 0.5
CANCELLED_REASON = "the import was cancelled; rows committed before that are kept"
WRITE_RETRY_DELAYS_S: list[float] = [1, 2, 4, 8]


def rows_path(settings: Settings, job_id: str) -> Any:
    """Where a job's validated rows wait between the two tasks."""
    return settings.work_dir / f"{job_id}.arrow"


def _run_name() -> str:
    job_id = current_run.parameters.get("job_id", "")
    try:
        with session_scope(write=False) as session:
            job = get_job(session, uuid.UUID(str(job_id)))
    except ValueError:
        job = None
    return f"import {job.filename}" if job else f"import {job_id}"


@task(name="load-sheet", cache_policy=NO_CACHE)
def load_sheet(job_id: str) -> int | None:
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
    out = rows_path(settings, job_id)
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
    rows = read_rows(rows_path(settings, job_id))
    artifact = create_progress_artifact(
        progress=100.0 * min((start - 1) * size, total) / max(total, 1),
        description=f"Rows committed of {total:,}",
    )
    assert isinstance(artifact, uuid.UUID)
    shown = time.monotonic()
    for batch_no in range(start, batches + 1):
        batch = rows.slice((batch_no - 1) * size, size)
        try:
            with session_scope() as session:
                apply_batch(session, key, attempt=attempt, batch_no=batch_no, rows=batch)
        except CancelRequested:
            return False
        if time.monotonic() - shown >= ARTIFACT_INTERVAL_S or batch_no == batches:
            update_progress_artifact(
                artifact_id=artifact, progress=100.0 * min(batch_no * size, total) / max(total, 1)
            )
            shown = time.monotonic()
    return True


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
        finish_job(
            session, job_id, JobStatus.FAILED, reason=_reason(state), flow_run_id=flow_run.id
        )
    rows_path(get_settings(), str(job_id)).unlink(missing_ok=True)


def _mark_cancelled(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    job_id = uuid.UUID(str(flow_run.parameters["job_id"]))
    with session_scope() as session:
        finish_job(
            session, job_id, JobStatus.CANCELLED, reason=CANCELLED_REASON, flow_run_id=flow_run.id
        )


@flow(
    name="import-items",
    flow_run_name=_run_name,
    on_failure=[_mark_failed],
    on_crashed=[_mark_failed],
    on_cancellation=[_mark_cancelled],
    log_prints=True,
)
def import_items(job_id: str) -> dict[str, Any]:
    """Import one job's file: load and validate it, then write it batch by batch."""
    logger = get_run_logger()
    key = uuid.UUID(job_id)
    run_id = current_run.id
    with session_scope() as session:
        attempt = begin_attempt(session, key, flow_run_id=uuid.UUID(run_id) if run_id else None)
    if attempt is None:
        logger.info("job %s has already ended; nothing to do", job_id)
    elif (batches := load_sheet(job_id)) is None:
        rows_path(get_settings(), job_id).unlink(missing_ok=True)
        with session_scope(write=False) as session:
            refused = get_job(session, key)
            reason = refused.error if refused else None
        logger.warning("job %s failed: %s", job_id, reason)
        return Failed(message=reason or "the file cannot be imported")  # type: ignore[return-value]
    elif not write_batches(job_id, attempt, batches):
        with session_scope() as session:
            job = finish_job(session, key, JobStatus.CANCELLED, reason=CANCELLED_REASON)
        logger.info("job %s was cancelled between batches", job_id)
        rows_path(get_settings(), job_id).unlink(missing_ok=True)
        return Cancelled(message=CANCELLED_REASON)  # type: ignore[return-value]
    else:
        with session_scope() as session:
            finish_job(session, key, JobStatus.COMPLETED)
        rows_path(get_settings(), job_id).unlink(missing_ok=True)
        _summarise(job_id)
    with session_scope(write=False) as session:
        job = get_job(session, key)
        assert job is not None
        return job_view(job)
