"""Saved column mappings: an import that was mapped by hand and completed teaches the
importer its headers, so the next sheet with the same headers is read the same way."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ColumnMapping, ImportJob, utcnow
from itemsheet.header import MappingChoice, SavedMapping

# More than any catalogue has layouts; the newest are offered to the parse.
SAVED_MAPPINGS_READ = 1000


def mapping_choice(session: Session, job: ImportJob) -> MappingChoice:
    """What the parse of `job` is told: its own mapping, the saved ones, its header row."""
    rows = session.scalars(
        select(ColumnMapping).order_by(ColumnMapping.saved_at.desc()).limit(SAVED_MAPPINGS_READ)
    ).all()
    saved = {
        row.header_key: SavedMapping(
            columns=dict(row.columns), saved_by=row.saved_by, saved_at=row.saved_at.isoformat()
        )
        for row in rows
    }
    return MappingChoice(dict(job.mapping or {}), saved, job.header_row)


def save_mapping(session: Session, job: ImportJob) -> ColumnMapping | None:
    """Keep the mapping a completed import was read with, if a person gave one."""
    used = job.header_map or {}
    if job.dry_run or not job.mapping or used.get("source") != "explicit" or not used.get("key"):
        return None
    row = session.scalars(
        select(ColumnMapping).where(ColumnMapping.header_key == used["key"])
    ).one_or_none()
    if row is None:
        row = ColumnMapping(header_key=used["key"])
        session.add(row)
    row.headers = list(used.get("headers") or [])
    row.columns = dict(used.get("mapping") or {})
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
