"""Crash recovery, decided in one place: what becomes of a job whose run died or ended.

Two pure functions hold every rule; the callers only gather facts and carry out the answer:

- `decide` (the reconciler, every round, for each quiet job): a job row, the state of its
  Prefect flow run and the clock give an `Action`: wait, resume, restart, fail or cancel.
  The reconciler asks it once to choose, and again inside the claiming transaction, on the
  locked row, so what it carries out is what the rules say about the job as it is now.
- `after_run` (the flow's state hooks): how a run that ended abnormally leaves its job.

Nothing here touches the database or Prefect; `itemsheet.jobs.claims` applies the answers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from db.models import JobStatus


class RunState(StrEnum):
    """A Prefect flow run's state type, by the same values (this package has no Prefect)."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"


# A run in one of these waits for a worker to start it.
WAITING = frozenset({RunState.SCHEDULED, RunState.PENDING})
# A run in one of these has begun (or is about to begin) its import.
UNDER_WAY = WAITING | {RunState.RUNNING, RunState.CANCELLING, RunState.PAUSED}
# Prefect still shows these as alive, though the job's silence says the process is gone.
SHOWN_ALIVE = frozenset({RunState.RUNNING, RunState.CANCELLING})


class Act(StrEnum):
    """What the reconciler does with a job."""

    WAIT = "wait"  # nothing: it is alive, or something else will move it
    RESUME = "resume"  # a new run continues the interrupted import after its last batch
    RESTART = "restart"  # a new run for a job whose run crashed before the import began
    FAIL = "failed"  # end the job `failed` with the reason
    CANCEL = "cancelled"  # end the job `cancelled` with the reason


@dataclass(frozen=True)
class Action:
    """The decision: what to do, the job's one-line reason when it ends, and whether to
    record the old run as Crashed in Prefect (which still shows it running)."""

    act: Act
    reason: str | None = None
    crash_run: bool = False
    # End the old run as Cancelled in Prefect (a review's suspended run that expired).
    cancel_run: bool = False


@dataclass(frozen=True)
class JobFacts:
    """What the rules read of a job row."""

    job_id: uuid.UUID
    status: JobStatus
    attempt: int
    flow_run_id: uuid.UUID | None
    heartbeat_at: datetime | None
    updated_at: datetime
    resumes: int
    processed_rows: int
    filename: str = ""
    # Since when a review's preview waits for a person (`awaiting_review`).
    review_ready_at: datetime | None = None
    # An undo job, resumed through its own deployment.
    undo: bool = False


@dataclass(frozen=True)
class Policy:
    """The settings the rules depend on."""

    stale_after_s: float
    max_attempts: int
    # A resume run waiting in the queue for a free worker is not dead; it gets this many
    # stale periods to start before it is taken as lost (a worker killed while starting it).
    queued_grace: int = 5
    # How long a preview waits for a person before the import is cancelled.
    review_ttl_s: float = 24 * 3600.0

    @property
    def stale(self) -> timedelta:
        """A job silent (or unchanged) this long is looked at."""
        return timedelta(seconds=self.stale_after_s)


WAIT = Action(Act.WAIT)


def decide(job: JobFacts, run: RunState | None, now: datetime, policy: Policy) -> Action:
    """What to do with `job`, whose flow run is in state `run` (None: none, or unknown to
    Prefect), at `now`. Every branch is a row of the table in the unit tests."""
    if job.status is JobStatus.PROCESSING:
        return _decide_processing(job, run, now, policy)
    if job.status is JobStatus.PENDING:
        return _decide_pending(job, run, now, policy)
    if job.status is JobStatus.AWAITING_REVIEW:
        return _decide_review(job, run, now, policy)
    return WAIT  # ended: only a person's retry moves it


# A run in one of these can no longer be resumed or cancelled.
RUN_ENDED = frozenset({RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED, RunState.CRASHED})


def _decide_review(job: JobFacts, run: RunState | None, now: datetime, policy: Policy) -> Action:
    """A preview waiting for a person: cancelled once it expires, or once its suspended
    run was cancelled in Prefect (the UI's cancel). A run that ended otherwise (a worker
    stopped it as it was suspending; `importer import --review` has none) leaves the
    review as it is: its answer starts a new run."""
    ready = job.review_ready_at or job.updated_at
    if now - ready >= timedelta(seconds=policy.review_ttl_s):
        hours = policy.review_ttl_s / 3600
        return Action(
            Act.CANCEL,
            f"nobody confirmed the import within {hours:g} h of its preview; nothing was written",
            cancel_run=job.flow_run_id is not None and run not in RUN_ENDED,
        )
    if job.flow_run_id is not None and run is RunState.CANCELLED:
        return Action(
            Act.CANCEL,
            "its Prefect flow run was cancelled while the import awaited its review;"
            " nothing was written",
        )
    return WAIT


def _decide_processing(
    job: JobFacts, run: RunState | None, now: datetime, policy: Policy
) -> Action:
    """A job whose import began: alive while it beats; otherwise resumed, within attempts."""
    beat = job.heartbeat_at
    if beat is not None and beat >= now - policy.stale:
        return WAIT
    if run in WAITING and beat is not None and beat > now - policy.queued_grace * policy.stale:
        return WAIT  # its resume run was claimed a moment ago and waits for a worker
    crash_run = run in SHOWN_ALIVE
    runs = 1 + job.resumes
    if runs >= policy.max_attempts:
        reason = (
            f"the import was interrupted {runs} time(s) (worker stopped or killed) and gets"
            f" no more automatic attempts; retry the job to resume after row"
            f" {job.processed_rows:,}"
        )
        return Action(Act.FAIL, reason, crash_run=crash_run)
    return Action(Act.RESUME, crash_run=crash_run)


def _decide_pending(job: JobFacts, run: RunState | None, now: datetime, policy: Policy) -> Action:
    """A job whose run has not begun the import: left while that run may still begin it."""
    if job.flow_run_id is None:
        return WAIT  # no run yet: the dispatcher creates it, or times the job out
    if job.updated_at >= now - policy.stale:
        return WAIT  # its run was created a moment ago
    if run in UNDER_WAY:
        return WAIT  # waiting for a free worker, or starting
    if run is RunState.CRASHED:
        runs = 1 + job.resumes
        if runs >= policy.max_attempts:
            return Action(
                Act.FAIL,
                f"its Prefect flow run crashed {runs} time(s) before the import began"
                " (worker stopped or process failed to start); retry the job",
            )
        return Action(Act.RESTART)
    if run is RunState.CANCELLED:
        return Action(
            Act.CANCEL, "its Prefect flow run was cancelled before the import began; retry the job"
        )
    ended = f"ended as {run.value.title()}" if run else "is gone from Prefect"
    return Action(Act.FAIL, f"its Prefect flow run {ended} before the import began; retry the job")


class RunEnd(StrEnum):
    """How a flow run ended abnormally, as its state hook saw it."""

    FAILED = "failed"
    CRASHED = "crashed"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """What a run's abnormal end makes of its job."""

    FAIL = "failed"  # the job ends `failed` with the run's reason
    CANCEL = "cancelled"  # the job ends `cancelled`
    INTERRUPT = "interrupted"  # left to the reconciler at once, which resumes it


INTERRUPTED_REASON = "the run carrying out the import stopped ({why}); it resumes automatically"
CANCELLED_REASON = "the import was cancelled; rows committed before that are kept"


def after_run(end: RunEnd, *, deployed: bool, asked_to_cancel: bool) -> Outcome:
    """The job of a run that ended as `end`.

    `deployed`: the run came from a deployment (a worker can resume it), not from a caller
    running the flow in its own process (`importer import`, stopped with Ctrl-C: the user
    is right there, so it fails and says so). `asked_to_cancel`: a person cancelled the job
    (API or Prefect UI); a cancel without that is a worker shutting down.
    """
    if end is RunEnd.FAILED:
        return Outcome.FAIL  # the file or the code: running it again gives the same
    if end is RunEnd.CRASHED:
        return Outcome.INTERRUPT if deployed else Outcome.FAIL
    return Outcome.CANCEL if asked_to_cancel else Outcome.INTERRUPT
