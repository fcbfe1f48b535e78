"""The import service: jobs, attempts and batches. Callers own every transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy.orm import Session

from db.item_snapshot import StoredItems, can_measure, measure_stored, same_as_stored
from db.item_store import (
    Measured,
    Prepared,
    lock_for_transaction,
    measure_items,
    merge_items,
    nameless_new_skus,
    prepare,
)
from db.models import ImportJob, ImportMode, JobSource, JobStatus, OnError, utcnow
from db.repository import add_row_errors, count_row_errors, delete_row_errors, get_job
from db.undo_store import keep_before
from itemsheet.files.storage import StoredFile
from itemsheet.jobs.guard import add_measured, judged_fields, limits
from itemsheet.jobs.mappings import save_mapping
from itemsheet.jobs.review import drift_warning, note_changes, start_preview, wanted_changes
from itemsheet.jobs.transitions import move
from itemsheet.sheet.messages import (
    NAME_CHARS,
    capped,
    clip,
    has_kept_errors_warning,
    with_kept_errors,
)
from itemsheet.sheet.prepare import SheetSummary
from itemsheet.sheet.validate import ERROR_COLUMNS, mode_skips, name_errors, unnamed
from settings import get_settings


class StaleAttempt(Exception):
    """A newer attempt owns the job (or it ended); this one must not write."""


class CancelRequested(Exception):
    """Somebody asked to cancel the job; the batch in flight was not written."""


@dataclass(frozen=True)
class JobOptions:
    """How to import a file."""

    sheet: str | None = None
    on_error: OnError = OnError.SKIP
    dry_run: bool = False
    # Which rows are written: new and stored SKUs (upsert), new ones only, stored ones only.
    mode: ImportMode = ImportMode.UPSERT
    batch_size: int = 10_000
    # Columns: an explicit mapping (normalised header -> field or None; see
    # `header.explicit_mapping`) and the header's row number as the user sees it.
    mapping: dict[str, str | None] | None = None
    header_row: int | None = None
    # Reading: a text file's encoding and delimiter, the decimal mark of numbers written
    # as text; None: detected from the file.
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    # Wait for a person to confirm a preview before writing.
    review: bool = False
    # Check the guardrails before the first write (`itemsheet.jobs.guard`); IMPORTER_GUARD=off
    # turns them off for every import.
    guard: bool = True
    requested_by: str | None = None


@dataclass(frozen=True)
class BatchOutcome:
    """What one committed batch did."""

    created: int
    updated: int
    unchanged: int
    failed: int
    skipped: int = 0


def create_job(
    session: Session,
    *,
    stored: StoredFile,
    filename: str,
    source: JobSource,
    options: JobOptions,
    source_uri: str | None = None,
) -> ImportJob:
    """A new pending job for a stored file."""
    # A dry run writes nothing, so there is nothing to guard.
    guarded = options.guard and get_settings().guard and not options.dry_run
    job = ImportJob(
        status=JobStatus.PENDING,
        source=source,
        source_uri=source_uri,
        filename=clip(filename, NAME_CHARS),
        file_sha256=stored.sha256,
        file_size=stored.size,
        file_uri=stored.uri,
        sheet=options.sheet,
        on_error=options.on_error,
        dry_run=options.dry_run,
        mode=options.mode,
        batch_size=options.batch_size,
        warnings=[],
        columns=[],
        mapping=options.mapping or None,
        header_row=options.header_row,
        encoding=options.encoding,
        delimiter=options.delimiter,
        decimal=options.decimal,
        review=options.review,
        guard=guarded,
        # A guarded import is measured first, as a review is previewed; it waits only
        # when a guardrail trips.
        previewing=options.review or guarded,
        requested_by=clip(options.requested_by, 100) if options.requested_by else None,
    )
    session.add(job)
    session.flush()
    return job


def create_refused_job(
    session: Session,
    *,
    location: str,
    filename: str,
    size: int,
    source: JobSource,
    options: JobOptions,
    reason: str,
) -> ImportJob:
    """A job, already failed, for a file that could not even be stored (missing, too big).

    It keeps no file (an empty `file_uri`), so nothing can ever read the source through
    it, bypassing the size limit and the store; it cannot be retried.
    """
    unstored = StoredFile(uri="", sha256="", size=size)
    job = create_job(
        session,
        stored=unstored,
        filename=filename,
        source=source,
        options=options,
        source_uri=location,
    )
    move(session, job, JobStatus.FAILED, reason=reason)
    return job


def begin_attempt(
    session: Session, job_id: uuid.UUID, *, flow_run_id: uuid.UUID | None
) -> int | None:
    """Mark the job processing under a new attempt number; None if it has nothing left to do."""
    job = _job(session, job_id, for_update=True)
    if job.status is JobStatus.AWAITING_REVIEW or (
        job.status.is_terminal and job.status is not JobStatus.FAILED
    ):
        return None  # ended (a failed one is run again), or its review is not answered yet
    if job.status != JobStatus.PROCESSING:
        # Started by hand (first run, or a retry of a failed job): a fresh set of automatic
        # resumes, and the writer's turn is taken again at the first batch.
        job.resumes = 0
        job.writing_since = None
    move(session, job, JobStatus.PROCESSING)
    job.heartbeat_at = utcnow()
    job.attempt += 1
    job.error = None  # a resume too starts clean
    if flow_run_id is not None:
        job.flow_run_id = flow_run_id
    return job.attempt


def record_summary(session: Session, job_id: uuid.UUID, summary: SheetSummary) -> ImportJob:
    """Store what the prepared sheet holds: row count, sheet, fields, warnings."""
    job = _job(session, job_id)
    if job.total_rows is not None and job.total_rows != summary.total_rows:
        raise RuntimeError("the stored file no longer reads as it did; refusing to resume")
    job.total_rows = summary.total_rows
    job.sheet_name = clip(summary.sheet_name, NAME_CHARS) if summary.sheet_name else None
    job.file_format = summary.file_format
    job.columns = list(summary.fields)
    job.warnings = capped(summary.warnings)
    _note_kept_errors(session, job)
    job.reading = summary.reading or None
    job.header_map = {
        "key": summary.header_key,
        "source": summary.mapping_source,
        "mapping": summary.mapping,
        "headers": [c["header"] for c in summary.columns],
        # Where the header was found: a rejected-rows file is read from the same row.
        "row": summary.header_row,
    }
    if job.previewing:
        start_preview(job, columns=summary.columns, header_row=summary.header_row)
    return job


def record_abort(
    session: Session, job_id: uuid.UUID, batches: Iterable[pl.DataFrame]
) -> str | None:
    """Keep the error report of an `on_error=abort` import that writes nothing; the
    reason, or None when every row is valid and the import may go on.

    `batches` are the sheet's rows in order, taken one at a time: every failing row is
    counted, and the first `IMPORTER_MAX_ROW_ERRORS` of them keep their error, so neither
    this process nor the database grows with the number of failures. Rows without a name
    are checked against the items as they are now: a new SKU among them fails. Items are
    never deleted, so a row that passes here still does when its batch is written (on a
    resume too: the items this import created are stored ones).
    """
    job = _job(session, job_id)
    limit = get_settings().max_row_errors
    rows = failed = kept = 0
    for batch in batches:
        rows += batch.height
        invalid = batch.filter(pl.col("error_message").is_not_null()).select("row", *ERROR_COLUMNS)
        # In update_only, a new SKU is skipped when its batch is written, whatever its name.
        unnamed_rows = unnamed(batch)
        if job.mode is ImportMode.UPDATE_ONLY:
            unnamed_rows = unnamed_rows.clear()
        nameless = nameless_new_skus(session, unnamed_rows.get_column("sku"))
        if nameless:
            invalid = pl.concat([invalid, name_errors(unnamed_rows, nameless)]).sort("row")
        if invalid.is_empty():
            continue
        if not failed:  # the report of an earlier attempt is written again
            delete_row_errors(session, job_id)
        shown = invalid.head(limit - kept)
        add_row_errors(session, job_id, shown)
        failed, kept = failed + invalid.height, kept + shown.height
    if not failed:
        return None
    job.failed = failed
    job.warnings = with_kept_errors(job.warnings, failed=failed, kept=kept)
    return f"{failed:,} of {rows:,} rows are invalid and on_error is abort; nothing was imported"


def claim_batch(
    session: Session, job_id: uuid.UUID, *, attempt: int, batch_no: int
) -> ImportJob | None:
    """Take the writer's turn and the job for batch `batch_no` of `attempt`, in the caller's
    transaction: the job, or None when that batch was committed before.

    Raises `StaleAttempt` when a newer attempt owns the job, so an old worker that wakes up
    late never writes twice, and `CancelRequested` once a cancel was asked. The fence of
    every batch that writes items: an import's and an undo's.
    """
    # Concurrent jobs touching the same items take turns, batch by batch (PostgreSQL;
    # SQLite's write lock does the same), and write keys in sorted order.
    lock_for_transaction(session, "items")
    job = _job(session, job_id, for_update=True)
    if job.attempt != attempt or job.status != JobStatus.PROCESSING:
        raise StaleAttempt(f"job {job_id} is owned by attempt {job.attempt} ({job.status})")
    if job.last_batch >= batch_no:
        return None
    if job.cancel_requested:
        raise CancelRequested(f"job {job_id} was cancelled after {job.processed_rows} rows")
    if job.last_batch != batch_no - 1:
        raise RuntimeError(f"batch {batch_no} cannot follow batch {job.last_batch}")
    return job


def _split(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A batch's failing rows (`row` and the error columns) and its valid ones."""
    if rows.get_column("error_message").null_count() == rows.height:
        # No row failed (the common batch): no filter copies the rows.
        return rows.head(0).select("row", *ERROR_COLUMNS), rows
    failing = pl.col("error_message").is_not_null()
    return rows.filter(failing).select("row", *ERROR_COLUMNS), rows.filter(~failing)


@dataclass(frozen=True)
class ReadyBatch:
    """A batch's valid rows made ready for `apply_batch` (`prepare_batch`): what the
    database is sent (`prepared`), and which of the valid rows that is (`sent`; None: all).
    The others equal their stored item and are counted unchanged without being sent."""

    prepared: Prepared
    sent: pl.Series | None = None


def prepare_batch(
    rows: pl.DataFrame, columns: list[str], dialect: str, stored: StoredItems | None = None
) -> ReadyBatch:
    """The valid rows of a batch of an import of `columns`, made ready for `apply_batch`
    to write them to a `dialect` database (`item_store.prepare`): done ahead, while the
    batch before it is written. With `stored`, a copy of the stored items that no other
    job has written since (upsert or update_only), the rows equal to their stored item
    are left out (`item_snapshot.same_as_stored`)."""
    valid = _split(rows)[1].select(columns)
    if stored is None:
        return ReadyBatch(prepare(valid, dialect))
    sent = ~same_as_stored(valid, stored)
    return ReadyBatch(prepare(valid.filter(sent), dialect), sent)


def apply_batch(
    session: Session,
    job_id: uuid.UUID,
    *,
    attempt: int,
    batch_no: int,
    rows: pl.DataFrame,
    now: datetime | None = None,
    prepared: ReadyBatch | None = None,
) -> BatchOutcome | None:
    """Write batch `batch_no` (1-based) and its progress; None if it was committed before.
    `prepared`: `prepare_batch(rows, ...)`, made ahead.

    Raises `StaleAttempt` when a newer attempt owns the job, so an old worker that wakes up
    late never writes twice, and `CancelRequested` (writing nothing) once a cancel was asked.
    """
    job = claim_batch(session, job_id, attempt=attempt, batch_no=batch_no)
    if job is None:
        return None
    fields = list(job.columns)
    failed, valid = _split(rows)
    now = now or utcnow()
    if job.checking_guard:
        check_batches(session, job_id, attempt=attempt, first=batch_no, last=batch_no, rows=rows)
        return BatchOutcome(0, 0, 0, 0)
    # A review's preview pass counts (and describes) what the real pass will write.
    wanted = wanted_changes(job) if job.previewing else 0
    dry = job.dry_run or job.previewing
    # The before-image an undo needs commits with the batch; a dry pass writes neither.
    before = None if dry else keep_before(session, job_id, batch_no, written_at=now)
    sent = valid.select(fields)
    if prepared is not None and prepared.sent is not None:
        if prepared.sent.len() != valid.height:
            raise ValueError(
                f"rows prepared for {prepared.sent.len():,} rows, not {valid.height:,}"
            )
        sent = sent.filter(prepared.sent)
    counts = merge_items(
        session,
        sent,
        now=now,
        dry_run=dry,
        changes=wanted,
        hook=before,
        mode=job.mode,
        # A preview also measures how far prices and quantities would move.
        measure=limits(get_settings()) if job.previewing else None,
        prepared=prepared.prepared if prepared is not None else None,
    )
    if counts.changes:
        note_changes(job, counts.changes, _rows_of(valid, counts.changes))
    if counts.measured is not None:
        found = (*counts.measured.large, *counts.measured.zeroed)
        job.preview = add_measured(job.preview or {}, counts.measured, _rows_of(valid, found))
    if counts.nameless:
        failed = pl.concat([failed, name_errors(valid, counts.nameless)]).sort("row")
    skipped = mode_skips(valid, counts.skipped, job.mode) if counts.skipped else None
    _keep_row_errors(session, job, failed, skipped)
    outcome = BatchOutcome(
        counts.created,
        counts.updated,
        counts.unchanged + valid.height - sent.height,
        failed.height,
        len(counts.skipped),
    )
    job.created += outcome.created
    job.updated += outcome.updated
    job.unchanged += outcome.unchanged
    job.processed_rows += rows.height
    job.last_batch = batch_no
    job.updated_at = utcnow()
    return outcome


# What the guardrails' pass found in some rows: the items they would change (a partial
# sheet's count, else None) and how far they would move them; None when the sheet has no
# field a rule reads.
GuardMeasure = tuple[int | None, Measured] | None


def measure_for_guard(
    session: Session,
    rows: pl.DataFrame,
    *,
    columns: list[str],
    mode: ImportMode,
    stored: StoredItems | None = None,
) -> GuardMeasure:
    """The guardrails' own measure of validated rows, in the caller's transaction (a
    reader's will do: only what the rules read is staged, nothing is written); against
    `stored` instead, a copy of the stored items, when it holds what the rules read."""
    settings = get_settings()
    judged, count = judged_fields(columns, settings)
    if not judged:
        return None
    valid = rows.filter(pl.col("error_message").is_null()).select("sku", *judged)
    if stored is not None and can_measure(judged, mode):
        return measure_stored(stored, valid, limits(settings), count=count)
    return measure_items(session, valid, limits=limits(settings), mode=mode, count=count)


def record_check(
    session: Session,
    job_id: uuid.UUID,
    *,
    attempt: int,
    first: int,
    last: int,
    rows: int,
    measured: GuardMeasure,
) -> bool:
    """Add what the guardrails' pass measured in batches `first` to `last` (`rows` rows)
    to the job's preview, and move its progress past `last`; False if they were checked
    before. Fenced like `apply_batch`; `review.end_preview` checks the rules at the end,
    and previews in full if one trips."""
    job = claim_batch(session, job_id, attempt=attempt, batch_no=first)
    if job is None:
        return False
    if not job.checking_guard:
        raise RuntimeError(f"job {job_id} is not in its guardrails' pass")
    if measured is not None:
        updated, found = measured
        job.preview = add_measured(job.preview or {}, found, {}, updated=updated)
    job.processed_rows += rows
    job.last_batch = last
    job.updated_at = utcnow()
    return True


def check_batches(
    session: Session, job_id: uuid.UUID, *, attempt: int, first: int, last: int, rows: pl.DataFrame
) -> bool:
    """The guardrails' own pass over batches `first` to `last` (their `rows`), measured and
    recorded in one transaction (`measure_for_guard`, `record_check`)."""
    job = _job(session, job_id)
    measured = measure_for_guard(session, rows, columns=list(job.columns), mode=job.mode)
    return record_check(
        session,
        job_id,
        attempt=attempt,
        first=first,
        last=last,
        rows=rows.height,
        measured=measured,
    )


def _rows_of(rows: pl.DataFrame, changes: Iterable[dict[str, object]]) -> dict[str, int]:
    """The row numbers of the described changes' SKUs."""
    found = list({str(c["sku"]) for c in changes})
    if not found:
        return {}
    return dict(rows.filter(pl.col("sku").is_in(found)).select("sku", "row").iter_rows())


def _keep_row_errors(
    session: Session, job: ImportJob, errors: pl.DataFrame, skipped: pl.DataFrame | None = None
) -> None:
    """Count a batch's failing rows in `job.failed` and the rows its mode skipped in
    `job.skipped`, and store their messages (in row order, after those of the batches
    before) while the job keeps fewer than `IMPORTER_MAX_ROW_ERRORS`; once one is not
    kept, the job warns how many are.

    How many are kept already is counted in the database, in the batch's transaction: a
    resumed attempt stores exactly what an undisturbed one would have. The count is asked
    only once the cap may bind, so a job of few failures pays nothing for it.
    """
    if skipped is not None and not skipped.is_empty():
        errors = pl.concat([errors.with_columns(skipped=pl.lit(False)), skipped]).sort("row")
    if errors.is_empty():
        return
    limit = get_settings().max_row_errors
    count = int(errors.get_column("skipped").sum()) if "skipped" in errors.columns else 0
    failed, passed = job.failed + errors.height - count, job.skipped + count
    if failed + passed <= limit and not has_kept_errors_warning(job.warnings):
        add_row_errors(session, job.id, errors)
    else:
        kept = count_row_errors(session, job.id)
        shown = errors.head(max(limit - kept, 0))
        add_row_errors(session, job.id, shown)
        job.warnings = with_kept_errors(
            job.warnings, failed=failed, kept=kept + shown.height, skipped=passed
        )
    job.failed, job.skipped = failed, passed


def _note_kept_errors(session: Session, job: ImportJob) -> None:
    """Say again how many row errors a job keeps, after its warnings were written anew
    (a resumed attempt reads its file again)."""
    if job.failed or job.skipped:
        kept = count_row_errors(session, job.id)
        job.warnings = with_kept_errors(
            job.warnings, failed=job.failed, kept=kept, skipped=job.skipped
        )


def finish_job(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    reason: str | None = None,
    flow_run_id: uuid.UUID | None = None,
) -> ImportJob | None:
    """End a job as completed, failed or cancelled.

    A completed (or undone) job is never changed again, and a job already in `status`
    keeps its reason.
    With `flow_run_id`, only that run may end the job: a late hook of an older run must
    not end a job that was retried meanwhile.
    """
    job = get_job(session, job_id, for_update=True)
    if job is None or job.status is status or not job.status.can_become(status):
        return job
    if flow_run_id is not None and job.flow_run_id != flow_run_id:
        return job
    move(session, job, status, reason=reason)
    if status is JobStatus.COMPLETED:
        drift = drift_warning(job)
        if drift:
            job.warnings = capped([*job.warnings, drift])
        save_mapping(session, job)
    return job


def _job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> ImportJob:
    job = get_job(session, job_id, for_update=for_update)
    if job is None:
        raise LookupError(f"import job {job_id} does not exist")
    return job
