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

    # The sets callers mean, each written once. A frozenset is not a member: these are
    # methods, so the enum keeps its seven members.

    @classmethod
    def terminal(cls) -> frozenset[JobStatus]:
        """Ended: the job will not change any more (unless retried)."""
        return frozenset({cls.COMPLETED, cls.FAILED, cls.CANCELLED, cls.UNDONE})

    @classmethod
    def active(cls) -> frozenset[JobStatus]:
        """Not ended: the job waits for a run, runs, or waits for its review (its file is
        still needed, and its import may still write)."""
        return frozenset({cls.PENDING, cls.PROCESSING, cls.AWAITING_REVIEW})

    @classmethod
    def under_way(cls) -> frozenset[JobStatus]:
        """Asked to run or running: it may write at any moment (no review holds it)."""
        return frozenset({cls.PENDING, cls.PROCESSING})

    @classmethod
    def retryable(cls) -> frozenset[JobStatus]:
        """Ended without writing all it should: a person may run it again."""
        return frozenset({cls.FAILED, cls.CANCELLED})

    @classmethod
    def undoable(cls) -> frozenset[JobStatus]:
        """Ended, and what it wrote can be undone (then it is `undone`)."""
        return frozenset({cls.COMPLETED, cls.FAILED, cls.CANCELLED})

    @classmethod
    def unstarted(cls) -> frozenset[JobStatus]:
        """Not begun writing: a cancel ends it at once, as no run has to stop first."""
        return frozenset({cls.PENDING, cls.AWAITING_REVIEW})

    @property
    def is_terminal(self) -> bool:
        """True once the job will not change any more (unless retried)."""
        return self in JobStatus.terminal()

    def can_become(self, to: JobStatus) -> bool:
        """Whether a job in this status may move to `to` (`itemsheet.jobs.transitions.move`)."""
        return to in _NEXT[self]


# Which status may follow which. A job that ended stays ended, except that a failed or
# cancelled one is run again, and an ended import is undone; `undone` is final. Staying
# in a status is no transition (and always allowed).
_NEXT: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset(JobStatus) - {JobStatus.UNDONE},
    JobStatus.PROCESSING: frozenset(JobStatus) - {JobStatus.UNDONE},
    JobStatus.AWAITING_REVIEW: frozenset(JobStatus) - {JobStatus.UNDONE},
    JobStatus.COMPLETED: frozenset({JobStatus.COMPLETED, JobStatus.UNDONE}),
    JobStatus.FAILED: frozenset(JobStatus) - {JobStatus.COMPLETED, JobStatus.AWAITING_REVIEW},
    JobStatus.CANCELLED: frozenset(JobStatus) - {JobStatus.COMPLETED, JobStatus.AWAITING_REVIEW},
    JobStatus.UNDONE: frozenset({JobStatus.UNDONE}),
}


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
