"""What the job table says about the service as a whole, read when asked (the metrics).

Every figure comes from a few aggregate queries over `import_job` at the moment it is
asked for; nothing is kept between calls, so every API process, and one restarted a moment
ago, shows the same numbers. Jobs are never deleted, so the row counts and the start
delays only grow, as a Prometheus counter and histogram must.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from db.base import SecondsBetween
from db.models import ImportJob, JobSource, JobStatus
from itemsheet.jobs.failures import FailureClass, classify_failure

# Upper bounds of the start delay's buckets, in seconds: a warm worker starts a run in about
# a second, a fresh interpreter in a few, and a job waiting for Prefect or a free worker in
# minutes.
START_DELAY_BOUNDS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0)
ROW_OUTCOMES = ("created", "updated", "unchanged", "skipped", "failed")


@dataclass(frozen=True)
class StartDelays:
    """How long jobs waited from their creation to the start of their first attempt.

    `at_most[i]` counts the jobs that started within `START_DELAY_BOUNDS_S[i]` seconds.
    """

    at_most: tuple[int, ...]
    count: int
    sum_s: float


@dataclass(frozen=True)
class JobStats:
    """The job table summed up; every status, source, outcome and class has an entry."""

    jobs: Mapping[tuple[JobStatus, JobSource], int]
    rows: Mapping[str, int]
    pending: int
    pending_without_run: int
    failures: Mapping[FailureClass, int]
    start_delays: Mapping[JobSource, StartDelays]


def read_job_stats(session: Session) -> JobStats:
    """Count jobs by status and source, rows by outcome, waiting jobs, failures by class
    and start delays by source."""
    jobs = dict.fromkeys(((s, src) for s in JobStatus for src in JobSource), 0)
    by_status = select(ImportJob.status, ImportJob.source, func.count()).group_by(
        ImportJob.status, ImportJob.source
    )
    for status, source, count in session.execute(by_status):
        jobs[(status, source)] = count
    pending = sum(jobs[(JobStatus.PENDING, src)] for src in JobSource)
    without_run = session.scalar(
        select(func.count()).where(
            ImportJob.status == JobStatus.PENDING, ImportJob.flow_run_id.is_(None)
        )
    )
    return JobStats(
        jobs=jobs,
        rows=_rows(session),
        pending=pending,
        pending_without_run=without_run or 0,
        failures=_failures(session),
        start_delays=_start_delays(session),
    )


def _rows(session: Session) -> dict[str, int]:
    # A dry run writes nothing: its counts say what an import would have done.
    sums = [func.coalesce(func.sum(getattr(ImportJob, name)), 0) for name in ROW_OUTCOMES]
    totals = session.execute(select(*sums).where(ImportJob.dry_run.is_(False))).one()
    return dict(zip(ROW_OUTCOMES, (int(t) for t in totals), strict=True))


def _failures(session: Session) -> dict[FailureClass, int]:
    failures = dict.fromkeys(FailureClass, 0)
    by_reason = (
        select(ImportJob.error, func.count())
        .where(ImportJob.status == JobStatus.FAILED)
        .group_by(ImportJob.error)
    )
    for reason, count in session.execute(by_reason):
        failures[classify_failure(reason)] += count
    return failures


def _start_delays(session: Session) -> dict[JobSource, StartDelays]:
    raw = SecondsBetween(ImportJob.created_at, ImportJob.started_at)
    # Clocks of different hosts may disagree by a little; a start "before" creation is 0 s.
    delay: ColumnElement[float] = case((raw < 0, 0.0), else_=raw)
    within = [func.sum(case((delay <= bound, 1), else_=0)) for bound in START_DELAY_BOUNDS_S]
    query = (
        select(ImportJob.source, func.count(), func.sum(delay), *within)
        .where(ImportJob.started_at.is_not(None))
        .group_by(ImportJob.source)
    )
    delays = dict.fromkeys(JobSource, StartDelays((0,) * len(START_DELAY_BOUNDS_S), 0, 0.0))
    for source, count, total, *at_most in session.execute(query):
        delays[source] = StartDelays(tuple(int(n) for n in at_most), count, float(total))
    return delays
