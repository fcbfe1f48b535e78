"""The tables: import jobs, the item catalogue and the row errors of each job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    Uuid,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, EnumText, UTCDateTime
from db.enums import ImportMode as ImportMode
from db.enums import JobSource as JobSource
from db.enums import JobStatus as JobStatus
from db.enums import OnError as OnError


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class ImportJob(Base):
    """One import of one file: options, progress and outcome."""

    __tablename__ = "import_job"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[JobStatus] = mapped_column(
        EnumText(JobStatus, 16), default=JobStatus.PENDING, index=True
    )
    source: Mapped[JobSource] = mapped_column(EnumText(JobSource, 16), default=JobSource.CLI)
    source_uri: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    file_size: Mapped[int] = mapped_column(BigInteger)
    file_uri: Mapped[str] = mapped_column(Text)
    file_format: Mapped[str | None] = mapped_column(String(8))
    sheet: Mapped[str | None] = mapped_column(String(255))
    sheet_name: Mapped[str | None] = mapped_column(String(255))
    on_error: Mapped[OnError] = mapped_column(EnumText(OnError, 8), default=OnError.SKIP)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    mode: Mapped[ImportMode] = mapped_column(
        EnumText(ImportMode, 16), default=ImportMode.UPSERT, server_default=ImportMode.UPSERT.value
    )
    batch_size: Mapped[int] = mapped_column(Integer)
    total_rows: Mapped[int | None] = mapped_column(Integer)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # Rows the mode left alone (an existing SKU in create_only, a new one in update_only).
    skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_batch: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Crash recovery: the running attempt's last sign of life, automatic resumes since the
    # job was last started by hand, and since when it holds the item writer's turn.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    resumes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    writing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Dispatch: a job that needs a flow run says since when and under which idempotency
    # key; the run is created off the request path, and `waiting_for` says why it has not
    # been yet (the orchestrator is starting or unreachable).
    run_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    run_key: Mapped[str | None] = mapped_column(String(80))
    waiting_for: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # Retention: when the job's stored file and row errors were let go (its counts stay);
    # such a job can no longer be retried.
    files_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Columns: the mapping a person gave (normalised header -> field or None), the header's
    # row number if given, and the mapping the sheet was read with (`header_key`,
    # `source`, `mapping`, `headers`), which a completed import saves for its headers.
    mapping: Mapped[dict[str, str | None] | None] = mapped_column(JSON)
    header_row: Mapped[int | None] = mapped_column(Integer)
    header_map: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Reading: the encoding, delimiter and decimal mark a person chose (null: detect), and
    # how the file was read ({"encoding"|"delimiter"|"decimal": {"value", "how", ...}}).
    encoding: Mapped[str | None] = mapped_column(String(40))
    delimiter: Mapped[str | None] = mapped_column(String(1))
    decimal: Mapped[str | None] = mapped_column(String(1))
    reading: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    requested_by: Mapped[str | None] = mapped_column(String(100))
    # Review: a preview pass (a dry run that also notes the changes) runs first; the job
    # then waits `awaiting_review` (since `review_ready_at`) until a person confirms
    # (`reviewed_at`) or rejects it. Each new preview is a new round.
    review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    previewing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    review_round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    review_ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The wait for a person is no work: since `paused_since` the job waits for its review
    # (and, once answered, for the run that carries on); the run's start adds the wait to
    # `waited_s` and counts itself in `review_runs`, which are not attempts a person sees.
    paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    waited_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    review_runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    preview: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Guardrails: the import's preview pass (its own, or the review's) is checked against
    # them before its first write (`itemsheet.jobs.guard`); what tripped is in `preview`.
    guard: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # Undo (source `undo`): the import it undoes, whether conflicts are overwritten, and
    # the items it deleted (`updated` counts the items it restored).
    undo_of: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("import_job.id", ondelete="CASCADE"), index=True
    )
    undo_force: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    deleted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the clean-up removed the import's before-images (IMPORTER_UNDO_DAYS).
    undo_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def checking_guard(self) -> bool:
        """The guardrails' own pass is under way: batches are measured, none is written,
        and nobody is asked (a review's preview has `review` set)."""
        return self.previewing and not self.review


class Item(Base):
    """One catalogue item, keyed by its SKU (case-sensitive, trimmed)."""

    __tablename__ = "item"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    unit: Mapped[str | None] = mapped_column(String(20))
    price: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    barcode: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class RowError(Base):
    """Why one data row of a job was not imported: it failed, or (`skipped`) the import's
    mode left it alone."""

    __tablename__ = "import_row_error"
    __table_args__ = (Index("ix_import_row_error_job_id_row", "job_id", "row"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("import_job.id", ondelete="CASCADE"))
    row: Mapped[int] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ColumnMapping(Base):
    """A mapping of one set of headers (by `header_key`), saved by an import that used an
    explicit mapping and completed; later sheets with the same headers are read by it."""

    __tablename__ = "column_mapping"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    header_key: Mapped[str] = mapped_column(String(32), unique=True)
    headers: Mapped[list[str]] = mapped_column(JSON)
    columns: Mapped[dict[str, str | None]] = mapped_column(JSON)
    # The reading choices (encoding, delimiter, decimal) a person made with the mapping.
    reading: Mapped[dict[str, str] | None] = mapped_column(JSON)
    saved_by: Mapped[str] = mapped_column(String(100))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class ItemUndo(Base):
    """The before-image of one committed batch of an import: what its undo needs.

    Written in the batch's own transaction. `created` is a JSON list of the SKUs the batch
    created; `changed` a JSON list of `[sku, {field: [before, after]}]` for each item it
    updated, with only the fields that changed; `written_at` is the `updated_at` it gave
    the items, so an undo can tell an item changed since.
    """

    __tablename__ = "item_undo"
    __table_args__ = (Index("ix_item_undo_job_id_batch_no", "job_id", "batch_no", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("import_job.id", ondelete="CASCADE"))
    batch_no: Mapped[int] = mapped_column(Integer)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime())
    entries: Mapped[int] = mapped_column(Integer)
    created: Mapped[str] = mapped_column(Text)
    changed: Mapped[str] = mapped_column(Text)


class ItemRestored(Base):
    """An item an undo restored: when, and the `updated_at` it was restored to.

    An undo gives what it restores its own time as `updated_at` (a change that syncs must
    see), so this row is how the undo of an earlier import can still tell that the item is
    as that import left it: undoing imports newest first never reports false conflicts.
    """

    __tablename__ = "item_restored"
    __table_args__ = (Index("ix_item_restored_sku_restored_at", "sku", "restored_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    restored_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
