"""Review before writing: a preview pass, a wait for a person, and their answer.

A job imported with `review` first runs a preview pass: the sheet is read and each batch
is counted against the stored items exactly as a dry run counts it, and the first rows
that would change are described field by field. A guarded import runs the same pass
(`itemsheet.jobs.guard` measures it) and waits only when a guardrail trips; otherwise it is
written at once. The job then waits `awaiting_review`
with no process of its own until a person confirms (optionally with another column
mapping), asks for a new preview under another mapping, or rejects it; unanswered, it
expires (`itemsheet.jobs.recovery`). A confirmed job is written as any other, from its first
batch. Callers own every transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import ImportJob, Item, JobStatus, utcnow
from db.repository import delete_row_errors, get_job, list_row_errors, undo_under_way
from itemsheet.jobs.guard import PREVIEW_CHANGES, chart, check, largest_first
from itemsheet.jobs.mappings import READING_CHOICES
from itemsheet.jobs.recovery import CANCELLED_REASON
from itemsheet.jobs.transitions import move
from itemsheet.sheet.errors import MappingNeeded
from itemsheet.sheet.fields import FIELDS
from itemsheet.sheet.header import explicit_mapping
from itemsheet.sheet.markdown import md_text
from itemsheet.sheet.messages import ERROR_CHARS, clip, with_kept_errors
from itemsheet.sheet.text import check_choices
from settings import get_settings

PREVIEW_ERRORS = 10
REJECTED_REASON = "the import was rejected at its review; nothing was written"
COUNTS = ("total_rows", "created", "updated", "unchanged", "skipped", "failed")


class ReviewConflict(Exception):
    """The job is not waiting for a review answer (or that answer came already)."""


class ReviewAnswer(BaseModel):
    """A person's answer to a preview, as every caller takes it: the API's and the command
    line's answers, and the form the Prefect UI shows at "Resume" (`flows.import_items.
    ReviewInput` is this model as a run input, so its fields are these).

    `confirm`: write the import (after a new preview pass if `mapping` or a reading
    choice changes what is read); otherwise reject it, unless `preview_only`: show a new
    preview and wait again. `mapping` is header -> field name or None, as given.
    `encoding`, `delimiter`, `decimal`: None keeps the job's choice, "" goes back to
    detection, anything else is the new choice.
    """

    model_config = ConfigDict(frozen=True)

    confirm: bool = Field(
        default=True, description="Write the import; untick to reject it (nothing is written)."
    )
    mapping: dict[str, str | None] | None = Field(
        default=None,
        description="Another column mapping, sheet header -> field (sku, name, description,"
        " category, unit, price, quantity, barcode; null ignores the column). It is"
        " previewed again before anything is written.",
    )
    preview_only: bool = Field(
        default=False, description="Only show a new preview under the mapping; wait again."
    )
    encoding: str | None = Field(
        default=None,
        description="Read the text file in this encoding (windows-1252, utf-16, ...);"
        " empty: detect it.",
    )
    delimiter: str | None = Field(
        default=None, description="Split the text file at , ; tab or |; empty: detect it."
    )
    decimal: str | None = Field(
        default=None,
        description="Read numbers written as text with this decimal mark, . or ,; empty:"
        " let the file's values decide.",
    )

    def choices(self) -> dict[str, str | None]:
        """The reading choices this answer changes, checked (`ValueError` otherwise)."""
        given = {k: v for k in READING_CHOICES if (v := getattr(self, k)) is not None}
        checked = check_choices(given.get("encoding"), given.get("delimiter"), given.get("decimal"))
        return {k: checked[k] for k in given}

    def to_form(self) -> dict[str, Any]:
        """As the run's resume form takes it (`flows.import_items.ReviewInput`)."""
        return {name: getattr(self, name) for name in ReviewAnswer.model_fields}


def pause_key(review_round: int) -> str:
    """The key of the run's wait for the preview of `review_round` (one per round)."""
    return f"review-{review_round}"


def start_preview(job: ImportJob, *, columns: list[dict[str, Any]], header_row: int) -> None:
    """Begin the current round's preview (kept as it is when a crashed pass resumes)."""
    if job.preview is not None and job.preview.get("round") == job.review_round:
        return
    job.preview = {
        "round": job.review_round,
        "header_row": header_row,
        "columns": columns,
        "changes": [],
        "counts": None,
        "errors": [],
        "problem": None,
    }


def note_changes(job: ImportJob, changes: tuple[dict[str, Any], ...], rows: dict[str, int]) -> None:
    """Add a batch's described changes to the preview (with their row numbers)."""
    preview = dict(job.preview or {})
    found = list(preview.get("changes") or [])
    for change in changes[: PREVIEW_CHANGES - len(found)]:
        found.append({"row": rows.get(change["sku"]), **change})
    preview["changes"] = sorted(found, key=lambda c: c["row"] or 0)
    job.preview = preview


def wanted_changes(job: ImportJob) -> int:
    """How many more changes the preview still describes."""
    return max(0, PREVIEW_CHANGES - len((job.preview or {}).get("changes") or []))


def await_answer(session: Session, job_id: uuid.UUID) -> ImportJob | None:
    """The job now waits for its answer (its run has suspended, or ended in its caller's
    process); None when it moved on meanwhile (a cancel)."""
    job = _job(session, job_id, for_update=True)
    if job.status is not JobStatus.PROCESSING or not job.previewing:
        return None
    if job.cancel_requested:  # asked while the preview was closing: nobody is waiting
        move(session, job, JobStatus.CANCELLED, reason=CANCELLED_REASON)
        return None
    move(session, job, JobStatus.AWAITING_REVIEW)
    job.updated_at = utcnow()
    return job


def record_problem(session: Session, job_id: uuid.UUID, problem: MappingNeeded) -> None:
    """A sheet whose columns cannot be read as mapped waits for a person to map them."""
    job = _job(session, job_id)
    job.reading = problem.reading or None
    job.preview = {
        "round": job.review_round,
        "header_row": problem.header_row,
        "columns": problem.columns,
        "changes": [],
        "counts": None,
        "errors": [],
        "problem": clip(problem.reason, ERROR_CHARS),
    }


def end_preview(session: Session, job_id: uuid.UUID) -> str | None:
    """Close the preview pass with its counts and first row errors.

    None: the job is to wait for a person (`await_answer`, once its run has suspended):
    it asked for a review, or a guardrail tripped (`itemsheet.jobs.guard`). "": the run goes
    on at once, its progress reset: a job confirmed while it was previewed under a new
    mapping, or a guarded import that tripped none, is written; one the guardrails' own
    pass held back is a review from now on, previewed in full (counts, changes, row
    errors) before it waits. Otherwise the reason it fails instead (on_error=abort with
    invalid rows writes nothing).
    """
    job = _job(session, job_id, for_update=True)
    preview = dict(job.preview or {})
    own_pass = not job.review  # the guardrails' pass: only what its rules read
    tripped: list[dict[str, Any]] = []
    settings = get_settings()
    if not preview.get("problem") and job.guard and job.reviewed_at is None:
        # A person's confirmation stands: it is not checked again.
        fields = [f for f in job.columns or [] if f != "sku"]
        # Only the partial-sheet rule reads how many items are stored (a count is a scan).
        partial = 0 < len(fields) <= settings.guard_partial_fields
        stored = (session.scalar(select(func.count()).select_from(Item)) or 0) if partial else 0
        measured = int((preview.get("measure") or {}).get("updated") or 0)
        updated = measured if own_pass else job.updated
        tripped = check(preview, fields=fields, updated=updated, stored=stored, settings=settings)
        preview["guard"] = tripped
    if own_pass:
        reset_progress(session, job)
        if tripped:
            # Held back: a review from now on (a new preview waits too, a retry before
            # it is confirmed is previewed again), whose full preview comes first.
            job.review = True
            keep = ("round", "header_row", "columns")
            job.preview = {**{k: preview.get(k) for k in keep}, **_EMPTY_PREVIEW}
            return ""
        job.preview = {**preview, "chart": chart(preview, tripped, settings)}
        job.previewing = False
        return ""
    if not preview.get("problem"):
        preview["counts"] = {k: getattr(job, k) or 0 for k in COUNTS}
        preview["errors"] = list_row_errors(session, job_id, limit=PREVIEW_ERRORS)
        if tripped:
            preview["changes"] = largest_first(preview, tripped)
        preview["chart"] = chart(preview, tripped, settings)
    job.preview = preview
    if preview.get("problem") or job.reviewed_at is None:
        job.reviewed_at = None  # a confirmation needs columns that find the SKU
        return None
    if job.on_error.value == "abort" and job.failed:
        return (
            f"{job.failed:,} of {job.total_rows or 0:,} rows are invalid and on_error is abort;"
            " nothing was imported"
        )
    reset_progress(session, job)
    job.previewing = False
    return ""


_EMPTY_PREVIEW: dict[str, Any] = {
    "changes": [],
    "counts": None,
    "errors": [],
    "problem": None,
}


def reset_progress(session: Session, job: ImportJob) -> None:
    """Forget a preview pass's counts and row errors, so the real pass starts afresh."""
    delete_row_errors(session, job.id)
    job.warnings = with_kept_errors(job.warnings, failed=0, kept=0)
    job.created = job.updated = job.unchanged = job.failed = job.skipped = 0
    job.processed_rows = 0
    job.last_batch = 0


def accept(session: Session, job_id: uuid.UUID, *, round_: int, answer: ReviewAnswer) -> bool:
    """Apply a person's answer to the preview of round `round_`; False if that preview
    was answered already (the API's answer and the run that resumes both apply it).

    `ReviewConflict` for an answer that would run the import while an undo of it is under
    way; the job is locked first, as an undo's creation locks it, so of the two only one
    passes.
    """
    job = _job(session, job_id, for_update=True)
    if job.status is not JobStatus.AWAITING_REVIEW or job.review_round != round_:
        return False
    _check_no_undo(session, job, answer)
    now = utcnow()
    if not answer.confirm and not answer.preview_only:
        move(session, job, JobStatus.CANCELLED, reason=REJECTED_REASON, now=now)
        return True
    new_mapping = explicit_mapping(answer.mapping) if answer.mapping is not None else None
    remap = new_mapping is not None and new_mapping != (job.mapping or {})
    choices = answer.choices()
    reread = any(getattr(job, k) != v for k, v in choices.items())
    reset_progress(session, job)
    move(session, job, JobStatus.PENDING, now=now)
    job.updated_at = now
    if remap or reread or answer.preview_only or (job.preview or {}).get("problem"):
        # A new mapping or reading (or no mapping yet that finds the SKU) is previewed
        # before anything is written; a confirmed one is then written at once by the
        # same run.
        job.mapping = new_mapping if new_mapping is not None else job.mapping
        for name, value in choices.items():
            setattr(job, name, value)
        job.reading = None  # the new preview says how it read the file
        job.review_round += 1
        job.previewing = True
        job.total_rows = None
    else:
        job.previewing = False
    if answer.confirm and not answer.preview_only:
        job.reviewed_at = now
    return True


def refuse_answer(session: Session, job_id: uuid.UUID, reason: str) -> None:
    """An answer that cannot be applied (a mapping naming no field): the job keeps
    waiting, its preview says why, and the next wait is a new round."""
    job = _job(session, job_id, for_update=True)
    if job.status is not JobStatus.AWAITING_REVIEW:
        return
    job.preview = {**(job.preview or {}), "problem": clip(reason, ERROR_CHARS)}
    job.review_round += 1


def review_text(job: ImportJob) -> str:
    """The preview in a few lines of Markdown (the Prefect UI's resume form shows it)."""
    preview = job.preview or {}
    # File names, headers, values and the reasons quoting them come from the file: escaped.
    name = md_text(job.filename or "")
    lines = [f"**Review of {name}** (nothing is written until it is confirmed)", ""]
    if preview.get("problem"):
        lines += [f"Problem: {md_text(preview['problem'])}", ""]
    for trip in preview.get("guard") or []:
        lines += [f"Unusual: {md_text(trip['sentence'])}", ""]
    if counts := preview.get("counts"):
        lines.append(
            f"{counts['total_rows']:,} rows: {counts['created']:,} to create,"
            f" {counts['updated']:,} to update, {counts['unchanged']:,} unchanged,"
            f" {counts.get('skipped', 0):,} skipped (mode {job.mode or 'upsert'}),"
            f" {counts['failed']:,} failing"
        )
    if read := reading_text(job.reading):
        lines += ["", f"Read as: {md_text(read)}"]
    columns = [
        f"{md_text(c['header'])} → {md_text(c['field'] or '(ignored)')}"
        for c in preview.get("columns") or []
    ]
    if columns:
        lines += ["", "Columns: " + "; ".join(columns)]
    for change in (preview.get("changes") or [])[:10]:
        fields = ", ".join(
            f"{md_text(f)}: {md_text(b)} → {md_text(a)}" for f, (b, a) in change["fields"].items()
        )
        row, action, sku = (md_text(change[k]) for k in ("row", "action", "sku"))
        lines.append(f"- row {row} {action} {sku}: {fields}")
    return "\n".join(lines)


def reading_text(reading: dict[str, dict[str, str]] | None) -> str:
    """How a file was read, in one line: 'Windows-1252 (detected); ';' (detected); decimal
    ',' (decided by '9,99' and 3 more)'."""
    reading = reading or {}
    parts = []
    if encoding := reading.get("encoding"):
        parts.append(f"{encoding.get('label', encoding['value'])} ({encoding['how']})")
    if delimiter := reading.get("delimiter"):
        parts.append(f"{delimiter.get('label', delimiter['value'])}-separated ({delimiter['how']})")
    if decimal := reading.get("decimal"):
        parts.append(f"decimal mark '{decimal['value']}' ({decimal.get('detail', decimal['how'])})")
    return "; ".join(parts)


def check_answerable(session: Session, job: ImportJob, answer: ReviewAnswer) -> None:
    """Raise `ReviewConflict` unless the job waits for a review answer that may be given
    now (checked again, on the locked job, when the answer is applied)."""
    if job.status is not JobStatus.AWAITING_REVIEW:
        raise ReviewConflict(
            f"the import is {job.status}, not awaiting review; there is nothing to confirm"
        )
    _check_no_undo(session, job, answer)


def _check_no_undo(session: Session, job: ImportJob, answer: ReviewAnswer) -> None:
    # An undo is refused while a job awaits review, so this finds only rows from before
    # that rule; run then, the import would write while its undo restores the items.
    if not (answer.confirm or answer.preview_only):
        return  # a rejection writes nothing
    undo = undo_under_way(session, job.id)
    if undo is not None:
        raise ReviewConflict(
            f"an undo of this import is under way (job {undo.id}); it cannot be confirmed"
            " until that undo has ended"
        )


def drift_warning(job: ImportJob) -> str | None:
    """When a reviewed import ends with other counts than its preview: what changed."""
    counts = (job.preview or {}).get("counts")
    # A guarded import's own pass is nobody's preview, unless it tripped and was confirmed.
    if not (job.review or job.reviewed_at) or not counts:
        return None
    now = {k: getattr(job, k) or 0 for k in COUNTS}
    if all(now[k] == counts.get(k, 0) for k in COUNTS):
        return None
    # `skipped` is named only where a mode left rows alone: an upsert never skips any.
    named = [k for k in COUNTS[1:] if k != "skipped" or counts.get(k, 0) or now[k]]
    said = ", ".join(f"{counts.get(k, 0):,} {k}" for k in named)
    made = ", ".join(f"{now[k]:,} {k}" for k in named)
    return (
        f"the items changed between the preview and the import: the preview counted {said};"
        f" the import made {made}"
    )


def expires_at(job: ImportJob, ttl: timedelta) -> datetime | None:
    """When an unanswered review is cancelled."""
    return job.review_ready_at + ttl if job.review_ready_at is not None else None


def field_choices() -> list[dict[str, Any]]:
    """The fields a column can be mapped to, for a mapping form."""
    return [{"name": f.name, "required": f.name == "sku"} for f in FIELDS]


def _job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> ImportJob:
    job = get_job(session, job_id, for_update=for_update)
    if job is None:
        raise LookupError(f"import job {job_id} does not exist")
    return job
