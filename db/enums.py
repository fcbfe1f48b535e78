"""The job's enumerations, apart from the tables (and SQLAlchemy): the command line builds
its options from them before it imports any database module, so `importer up` starts its
Prefect server without waiting for imports it does not need. `db.models` re-exports them."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Life cycle of an import job."""

    PENDING = "pending"
    PROCESSING = "processing"
    # A review's preview is ready: nothing is written until a person confirms.
    AWAITING_REVIEW = "awaiting_review"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # An import whose undo completed: its items are as before it, its counts stay.
    UNDONE = "undone"

    @property
    def is_terminal(self) -> bool:
        """True once the job will not change any more (unless retried)."""
        return self in (
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.UNDONE,
        )


class OnError(StrEnum):
    """What an import does with invalid rows."""

    SKIP = "skip"
    ABORT = "abort"


class ImportMode(StrEnum):
    """Which rows an import writes: `upsert` creates new SKUs and updates stored ones;
    `create_only` leaves stored items alone, `update_only` creates none (a supplier's list
    of more items than the shop keeps). Rows a mode leaves alone count as skipped."""

    UPSERT = "upsert"
    CREATE_ONLY = "create_only"
    UPDATE_ONLY = "update_only"


class JobSource(StrEnum):
    """Who started an import."""

    CLI = "cli"
    UPLOAD = "upload"
    SCHEDULE = "schedule"
    # The undo of another import (`ImportJob.undo_of`).
    UNDO = "undo"
