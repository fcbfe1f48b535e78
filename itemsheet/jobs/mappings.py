"""Saved column mappings: an import that was mapped by hand and completed teaches the
importer its headers, so the next sheet with the same headers is read the same way."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ColumnMapping, ImportJob, utcnow
from itemsheet.sheet.header import MappingChoice, SavedMapping, clip_keys

# More than any catalogue has layouts; the newest are offered to the parse.
SAVED_MAPPINGS_READ = 1000
READING_CHOICES = ("encoding", "delimiter", "decimal")


def mapping_choice(session: Session, job: ImportJob) -> MappingChoice:
    """What the parse of `job` is told: its own mapping, the saved ones, its header row."""
    rows = session.scalars(
        select(ColumnMapping).order_by(ColumnMapping.saved_at.desc()).limit(SAVED_MAPPINGS_READ)
    ).all()
    saved = {
        row.header_key: SavedMapping(
            columns=clip_keys(row.columns),
            saved_by=row.saved_by,
            saved_at=row.saved_at.isoformat(),
            **{k: v for k, v in (row.reading or {}).items() if k in READING_CHOICES},
        )
        for row in rows
    }
    return MappingChoice(clip_keys(job.mapping or {}), saved, job.header_row)


def reading_choices(job: ImportJob) -> dict[str, str]:
    """The reading choices a person made for `job` (encoding, delimiter, decimal)."""
    return {k: v for k in READING_CHOICES if (v := getattr(job, k))}


def save_mapping(session: Session, job: ImportJob) -> ColumnMapping | None:
    """Keep the mapping a completed import was read with and the reading choices made with
    it, if a person gave either."""
    used = job.header_map or {}
    explicit = bool(job.mapping) and used.get("source") == "explicit"
    chosen = reading_choices(job)
    if job.dry_run or not used.get("key") or not (explicit or chosen):
        return None
    row = session.scalars(
        select(ColumnMapping).where(ColumnMapping.header_key == used["key"])
    ).one_or_none()
    if row is None:
        row = ColumnMapping(header_key=used["key"])
        session.add(row)
    row.headers = list(used.get("headers") or [])
    row.columns = clip_keys(used.get("mapping") or {})
    row.reading = chosen or None
    row.saved_by = (job.requested_by or job.source.value)[:100]
    row.saved_at = utcnow()
    row.job_id = job.id
    return row


def list_mappings(session: Session, *, limit: int = 100) -> list[ColumnMapping]:
    """The saved mappings, newest first."""
    return list(
        session.scalars(
            select(ColumnMapping).order_by(ColumnMapping.saved_at.desc()).limit(limit)
        ).all()
    )
