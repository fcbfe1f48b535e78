"""Import jobs as the outside sees them: one typed view, the history, cancel and retry
(refused, with `removed_reason`, once the retention removed a job's files).

The API, the CLI and the Prefect artifacts all show a job through `JobView`. Functions
take the session first and never commit; the caller's unit of work does.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from db.models import ImportJob, ImportMode, JobSource, JobStatus, OnError, utcnow
from db.repository import get_job, undo_under_way
from itemsheet.jobs.dispatching import request_run
from itemsheet.jobs.importing import finish_job
from itemsheet.jobs.review import reset_progress
from itemsheet.jobs.transitions import move
from itemsheet.sheet.messages import capped

CANCELLED_BEFORE_START = "the import was cancelled before it started"


class GuardExample(BaseModel):
    """One item a tripped guardrail names: its SKU, row and old -> new values."""

    model_config = ConfigDict(frozen=True)

    sku: str
    row: int | None
    fields: dict[str, list[Any]] = Field(description="field -> [stored, new]")
    text: str = Field(description="As the sentence shows it: 'SKU-1 19.99 -> 1999.00'.")


class GuardTrip(BaseModel):
    """One guardrail an import tripped (see the README's "Guardrails")."""

    model_config = ConfigDict(frozen=True)

    rule: str = Field(description="price_change, price_factor, quantity_zero or partial_sheet.")
    threshold: dict[str, float] = Field(description="The rule's settings, e.g. share_pct: 20.")
    seen: int = Field(description="How many items the rule counted.")
    of: int = Field(description="Out of how many.")
    percent: float | None
    sentence: str = Field(description="The rule, its threshold and the numbers, in words.")
    examples: list[GuardExample]


class GuardView(BaseModel):
    """Whether an import is checked against the guardrails, and what it tripped."""

    model_config = ConfigDict(frozen=True)

    checked: bool = Field(
        description="The import is checked before its first write (false: guard=off,"
        " IMPORTER_GUARD=off, a dry run, or a job from before the guardrails)."
    )
    tripped: list[GuardTrip] = Field(
        default_factory=list,
        description="The rules its preview tripped; the job then waits awaiting_review.",
    )


def guard_view(job: ImportJob) -> GuardView:
    """The job's guardrails as clients see them."""
    trips = (job.preview or {}).get("guard") or []
    return GuardView(checked=job.guard, tripped=[GuardTrip(**t) for t in trips])


class JobView(BaseModel):
    """One import job as clients see it (API, CLI `--json`, the run's summary artifact)."""

    model_config = ConfigDict(frozen=True)

    job_id: uuid.UUID
    status: JobStatus
    source: JobSource
    filename: str = Field(description="The client's file name; display only.")
    total_rows: int | None = Field(description="Non-empty data rows; null until the sheet is read.")
    processed_rows: int
    checked_rows: int | None = Field(
        default=None,
        description="While the guardrails' pass counts the sheet against the stored items"
        " (before any write; processed_rows is 0 meanwhile): how many rows it has counted.",
    )
    percent: float
    created: int
    updated: int
    unchanged: int
    failed: int
    skipped: int = Field(
        default=0,
        description="Rows the mode left alone (a stored SKU in create_only, a new one in"
        " update_only); created + updated + unchanged + skipped + failed = total_rows.",
    )
    error: str | None = Field(description="Why the job failed or was cancelled, in one line.")
    warnings: list[str]
    dry_run: bool
    on_error: OnError
    mode: ImportMode = Field(
        default=ImportMode.UPSERT,
        description="upsert, create_only (stored items left alone) or update_only (no item"
        " created).",
    )
    sheet: str | None
    elapsed_s: float | None = Field(
        description="The work's own time, in seconds: from the first run's start, without"
        " the wait for a review's answer (`waited_s`); null before it starts."
    )
    rows_per_s: float = Field(
        description="Rows written per second since this run began writing (its guardrails'"
        " pass included)."
    )
    last_batch: int
    attempt: int
    retries: int = Field(
        default=0,
        description="Runs after the first that were not started by answering the review:"
        " resumes after a crash and retries (`attempt` counts every run).",
    )
    waited_s: float = Field(
        default=0.0,
        description="Seconds the import waited for its review's answer and for the run the"
        " answer started; not in `elapsed_s`, which is the work's own time.",
    )
    file_sha256: str
    file_size: int
    flow_run_id: uuid.UUID | None
    waiting_for: str | None = Field(
        default=None,
        description="Why a pending job has not started yet (e.g. the Prefect API is not"
        " reachable yet); null once its run exists.",
    )
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    files_removed_at: datetime | None = Field(
        default=None,
        description="When retention removed the job's stored file and row errors (its"
        " counts stay); null while they are kept. Such a job cannot be retried.",
    )
    review: bool = Field(
        default=False,
        description="Nothing is written until a person confirms a preview (asked for, or"
        " because a guardrail tripped).",
    )
    previewing: bool = Field(
        default=False,
        description="The counts are a review's preview (a dry pass), not written items.",
    )
    review_round: int = Field(default=0, description="How many previews came before this one.")
    guard: GuardView = Field(
        default_factory=lambda: GuardView(checked=False),
        description="The guardrails: whether they are checked and which rules tripped.",
    )
    mapping: dict[str, str | None] | None = Field(
        default=None, description="The column mapping given (normalised header -> field)."
    )
    header_row: int | None = Field(default=None, description="The header's row, if given.")
    encoding: str | None = Field(
        default=None, description="The text file's encoding a person chose; null: detected."
    )
    delimiter: str | None = Field(
        default=None, description="The text file's delimiter a person chose; null: detected."
    )
    decimal: str | None = Field(
        default=None,
        description="The decimal mark a person chose for numbers written as text; null: the"
        " file's values decide it.",
    )
    reading: dict[str, dict[str, str]] | None = Field(
        default=None,
        description="How the file was read: `encoding` and `delimiter` (text files),"
        " `decimal` (sheets with prices or quantities); each with `value` and `how` it was"
        " chosen (given, saved with the mapping, byte order mark, valid UTF-8, detected,"
        " decided by the values, default).",
    )
    undo_of: uuid.UUID | None = Field(
        default=None, description="An undo job (source `undo`): the import it undoes."
    )
    deleted: int = Field(
        default=0,
        description="An undo job: the items it deleted (those its import created); its"
        " `updated` counts the items it restored and `failed` those changed since the import.",
    )


def job_view(job: ImportJob, *, now: datetime | None = None) -> JobView:
    """The job as clients see it, with its percentage, elapsed time and rate."""
    now = now or utcnow()
    total = job.total_rows
    # The guardrails' pass counts rows before any is written: its count is its own, so the
    # import's progress rises once, from 0 as it writes, not twice.
    checking = job.status is JobStatus.PROCESSING and job.checking_guard
    processed = 0 if checking else job.processed_rows
    if total:
        percent = round(100.0 * processed / total, 1)
    else:
        percent = 100.0 if job.status is JobStatus.COMPLETED else 0.0
    elapsed = None
    # The work's own time: the wait for a person's answer, and for the run it starts, is
    # no work (`paused_since` stops the clock, `waited_s` holds the waits before).
    ended = job.paused_since or job.finished_at or now
    waited = job.waited_s or 0.0
    if job.started_at is not None:
        elapsed = round(max((ended - job.started_at).total_seconds() - waited, 0.0), 3)
    # The rate is the write's own: rows written since this run took the writer's turn.
    writing = (ended - job.writing_since).total_seconds() if job.writing_since else elapsed
    rate = round(processed / writing, 1) if writing and processed else 0.0
    return JobView(
        job_id=job.id,
        status=job.status,
        source=job.source,
        filename=job.filename,
        total_rows=total,
        processed_rows=processed,
        checked_rows=job.processed_rows if checking else None,
        percent=percent,
        created=job.created,
        updated=job.updated,
        unchanged=job.unchanged,
        failed=job.failed,
        skipped=job.skipped or 0,
        error=job.error,
        # Capped here too, for jobs stored before the caps existed.
        warnings=capped(job.warnings or []),
        dry_run=job.dry_run,
        on_error=job.on_error,
        mode=job.mode or ImportMode.UPSERT,
        sheet=job.sheet_name or job.sheet,
        elapsed_s=elapsed,
        rows_per_s=rate,
        last_batch=job.last_batch,
        attempt=job.attempt,
        retries=max(job.attempt - 1 - (job.review_runs or 0), 0),
        waited_s=round(waited, 3),
        file_sha256=job.file_sha256,
        file_size=job.file_size,
        flow_run_id=job.flow_run_id,
        waiting_for=job.waiting_for,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        files_removed_at=job.files_removed_at,
        review=job.review,
        previewing=job.previewing,
        review_round=job.review_round,
        guard=guard_view(job),
        mapping=job.mapping,
        header_row=job.header_row,
        encoding=job.encoding,
        delimiter=job.delimiter,
        decimal=job.decimal,
        reading=job.reading,
        undo_of=job.undo_of,
        deleted=job.deleted,
    )


def removed_reason(removed_at: datetime) -> str:
    """Why a job whose files were removed cannot run again, in one sentence."""
    return (
        f"this import's file and row errors were removed on {removed_at:%Y-%m-%d} by the"
        " retention clean-up (IMPORTER_RETENTION_DAYS); upload the file again to import it"
    )


class JobNotFound(LookupError):
    """No import job has this id."""

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__(f"there is no import job {job_id}; check the id")


class JobConflict(Exception):
    """The job's status does not allow what was asked; `str()` says why."""


class InvalidCursor(ValueError):
    """A history cursor that this service did not hand out."""

    def __init__(self) -> None:
        super().__init__("the cursor is not valid; pass next_cursor from the previous page")


@dataclass(frozen=True)
class HistoryPage:
    """One page of jobs, newest first, and the cursor of the next page (None: last page)."""

    jobs: Sequence[ImportJob]
    next_cursor: str | None


def load_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> ImportJob:
    """The job with this id, or `JobNotFound`."""
    job = get_job(session, job_id, for_update=for_update)
    if job is None:
        raise JobNotFound(job_id)
    return job


def encode_cursor(job: ImportJob) -> str:
    """An opaque token for the position just after `job` in newest-first order."""
    raw = f"{job.created_at.isoformat()}|{job.id.hex}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor stands for; `InvalidCursor` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, job_id = raw.split("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, uuid.UUID(hex=job_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor from exc


def list_history(
    session: Session,
    *,
    limit: int,
    cursor: str | None = None,
    status: JobStatus | None = None,
    source: JobSource | None = None,
) -> HistoryPage:
    """Jobs newest first (ties broken by id), filtered, starting after `cursor`."""
    query = select(ImportJob).order_by(ImportJob.created_at.desc(), ImportJob.id.desc())
    if status is not None:
        query = query.where(ImportJob.status == status)
    if source is not None:
        query = query.where(ImportJob.source == source)
    if cursor is not None:
        created_at, job_id = decode_cursor(cursor)
        query = query.where(
            or_(
                ImportJob.created_at < created_at,
                and_(ImportJob.created_at == created_at, ImportJob.id < job_id),
            )
        )
    jobs = session.scalars(query.limit(limit + 1)).all()
    if len(jobs) > limit:
        return HistoryPage(jobs[:limit], encode_cursor(jobs[limit - 1]))
    return HistoryPage(jobs, None)


def request_cancel(session: Session, job_id: uuid.UUID) -> ImportJob:
    """Ask a job to stop; one that has not started yet is cancelled at once.

    A job still `pending` has not begun an attempt, and a flow run that begins later finds it
    cancelled and does nothing, so ending it here is safe. A running job is told through
    `cancel_requested`, which the flow checks between batches.
    """
    job = load_job(session, job_id, for_update=True)
    if job.status.is_terminal:
        raise JobConflict(
            f"the import has already ended as {job.status}; there is nothing to cancel"
        )
    job.cancel_requested = True
    if job.status in JobStatus.unstarted():
        finish_job(session, job_id, JobStatus.CANCELLED, reason=CANCELLED_BEFORE_START)
    return job


def reopen_for_retry(session: Session, job_id: uuid.UUID) -> ImportJob:
    """Put a failed or cancelled job back to `pending` for a new flow run."""
    job = load_job(session, job_id, for_update=True)
    if job.status not in JobStatus.retryable():
        raise JobConflict(
            f"only a failed or cancelled import can be retried; this one is {job.status}"
        )
    if undo_under_way(session, job_id):
        raise JobConflict("an undo of this import is under way; it cannot run again")
    if not job.file_uri and job.undo_of is None:
        raise JobConflict(
            "this import was refused before its file was stored, so there is nothing to"
            " retry; send the file again"
        )
    if job.files_removed_at is not None:
        raise JobConflict(removed_reason(job.files_removed_at))
    move(session, job, JobStatus.PENDING)
    job.cancel_requested = False
    guarded = job.guard and (job.previewing or job.last_batch == 0)
    if (job.review or guarded) and job.reviewed_at is None:
        # Never confirmed: it is previewed again (the items may have changed) and waits;
        # a guarded one that wrote nothing yet is checked again.
        job.previewing = True
        job.review_round += 1
        reset_progress(session, job)
    # The new run is recorded once created; until then no older run's hook may end the job.
    request_run(job, retry=True)
    return job
