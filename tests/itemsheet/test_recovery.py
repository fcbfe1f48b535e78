"""Every rule of crash recovery, as a table: job row + run state + clock -> action."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from db.models import JobStatus
from itemsheet.jobs.recovery import (
    Act,
    JobFacts,
    Outcome,
    Policy,
    RunEnd,
    RunState,
    after_run,
    decide,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(stale_after_s=60, max_attempts=3)  # queued grace: 5 x 60 s
RUN = uuid.uuid4()


def job(
    status: JobStatus,
    *,
    beat_s_ago: float | None = None,
    changed_s_ago: float = 600,
    run: uuid.UUID | None = RUN,
    resumes: int = 0,
) -> JobFacts:
    """A job as the reconciler reads it; times are seconds before NOW."""
    return JobFacts(
        job_id=uuid.uuid4(),
        status=status,
        attempt=1 + resumes,
        flow_run_id=run,
        heartbeat_at=None if beat_s_ago is None else NOW - timedelta(seconds=beat_s_ago),
        updated_at=NOW - timedelta(seconds=changed_s_ago),
        resumes=resumes,
        processed_rows=20_000,
    )


P, Q = JobStatus.PROCESSING, JobStatus.PENDING
S = RunState

CASES = [
    # -- processing: the import began; its attempt beats while alive --------------------
    ("beating", job(P, beat_s_ago=10), S.RUNNING, Act.WAIT, False),
    ("beat exactly at the limit", job(P, beat_s_ago=60), S.RUNNING, Act.WAIT, False),
    ("silent, Prefect says running", job(P, beat_s_ago=61), S.RUNNING, Act.RESUME, True),
    ("silent while cancelling", job(P, beat_s_ago=120), S.CANCELLING, Act.RESUME, True),
    ("interrupted (beat cleared)", job(P), S.CRASHED, Act.RESUME, False),
    ("interrupted, run gone", job(P), None, Act.RESUME, False),
    ("interrupted, no run recorded", job(P, run=None), None, Act.RESUME, False),
    ("resume run queued a moment ago", job(P, beat_s_ago=120), S.SCHEDULED, Act.WAIT, False),
    ("resume run pending within grace", job(P, beat_s_ago=299), S.PENDING, Act.WAIT, False),
    ("resume run queued past grace", job(P, beat_s_ago=301), S.SCHEDULED, Act.RESUME, False),
    ("queued, beat cleared", job(P), S.SCHEDULED, Act.RESUME, False),
    ("silent, last attempt", job(P, beat_s_ago=600, resumes=2), S.RUNNING, Act.FAIL, True),
    ("interrupted, last attempt", job(P, resumes=2), S.CRASHED, Act.FAIL, False),
    ("past the last attempt", job(P, resumes=5), None, Act.FAIL, False),
    # -- pending: the run exists but has not begun the import --------------------------
    ("no run yet (dispatcher's)", job(Q, run=None), None, Act.WAIT, False),
    ("run created a moment ago", job(Q, changed_s_ago=30), S.CRASHED, Act.WAIT, False),
    ("run waiting for a worker", job(Q), S.SCHEDULED, Act.WAIT, False),
    ("run pending", job(Q), S.PENDING, Act.WAIT, False),
    ("run starting", job(Q), S.RUNNING, Act.WAIT, False),
    ("run paused", job(Q), S.PAUSED, Act.WAIT, False),
    ("run cancelling", job(Q), S.CANCELLING, Act.WAIT, False),
    ("run crashed before it began", job(Q), S.CRASHED, Act.RESTART, False),
    ("run crashed, last attempt", job(Q, resumes=2), S.CRASHED, Act.FAIL, False),
    ("run cancelled in the UI", job(Q), S.CANCELLED, Act.CANCEL, False),
    ("run failed", job(Q), S.FAILED, Act.FAIL, False),
    ("run completed without it", job(Q), S.COMPLETED, Act.FAIL, False),
    ("run deleted from Prefect", job(Q), None, Act.FAIL, False),
    # -- ended: only a person's retry moves it ------------------------------------------
    *[
        (f"{status} job", job(status), state, Act.WAIT, False)
        for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
        for state in (S.CRASHED, S.RUNNING, None)
    ],
]


@pytest.mark.parametrize(
    ("facts", "run", "act", "crash_run"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_decide(facts: JobFacts, run: RunState | None, act: Act, crash_run: bool) -> None:
    action = decide(facts, run, NOW, POLICY)
    assert (action.act, action.crash_run) == (act, crash_run)
    # A job that ends gets a one-line reason; one that waits or runs again gets none.
    ends = act in (Act.FAIL, Act.CANCEL)
    assert (action.reason is not None) == ends
    if action.reason is not None:
        assert "\n" not in action.reason and "retry the job" in action.reason


def test_the_reasons_say_how_often_and_where_to_resume() -> None:
    interrupted = decide(job(P, resumes=2), S.CRASHED, NOW, POLICY)
    assert interrupted.reason == (
        "the import was interrupted 3 time(s) (worker stopped or killed) and gets no more"
        " automatic attempts; retry the job to resume after row 20,000"
    )
    crashed = decide(job(Q, resumes=2), S.CRASHED, NOW, POLICY)
    assert (
        crashed.reason is not None and "crashed 3 time(s) before the import began" in crashed.reason
    )
    failed = decide(job(Q), S.FAILED, NOW, POLICY)
    assert failed.reason == (
        "its Prefect flow run ended as Failed before the import began; retry the job"
    )
    gone = decide(job(Q), None, NOW, POLICY)
    assert gone.reason == (
        "its Prefect flow run is gone from Prefect before the import began; retry the job"
    )


def test_one_attempt_means_no_automatic_resume() -> None:
    once = Policy(stale_after_s=60, max_attempts=1)
    assert decide(job(P), S.CRASHED, NOW, once).act is Act.FAIL
    assert decide(job(Q), S.CRASHED, NOW, once).act is Act.FAIL


@pytest.mark.parametrize(
    ("end", "deployed", "asked", "outcome"),
    [
        (RunEnd.FAILED, True, False, Outcome.FAIL),
        (RunEnd.FAILED, False, False, Outcome.FAIL),
        (RunEnd.FAILED, True, True, Outcome.FAIL),
        (RunEnd.CRASHED, True, False, Outcome.INTERRUPT),
        (RunEnd.CRASHED, False, False, Outcome.FAIL),
        (RunEnd.CRASHED, True, True, Outcome.INTERRUPT),
        (RunEnd.CANCELLED, True, True, Outcome.CANCEL),
        (RunEnd.CANCELLED, False, True, Outcome.CANCEL),
        (RunEnd.CANCELLED, True, False, Outcome.INTERRUPT),
        (RunEnd.CANCELLED, False, False, Outcome.INTERRUPT),
    ],
)
def test_after_run(end: RunEnd, deployed: bool, asked: bool, outcome: Outcome) -> None:
    assert after_run(end, deployed=deployed, asked_to_cancel=asked) is outcome


R = JobStatus.AWAITING_REVIEW
DAY_S = 24 * 3600.0


def review(*, ready_s_ago: float, run: uuid.UUID | None = RUN) -> JobFacts:
    """A preview waiting for a person since `ready_s_ago` seconds before NOW."""
    facts = job(R, run=run)
    return JobFacts(**{**vars(facts), "review_ready_at": NOW - timedelta(seconds=ready_s_ago)})


REVIEW_CASES = [
    ("suspended, fresh", review(ready_s_ago=60), S.PAUSED, Act.WAIT, False),
    ("suspended, a second before expiry", review(ready_s_ago=DAY_S - 1), S.PAUSED, Act.WAIT, False),
    ("resumed, on its way", review(ready_s_ago=60), S.SCHEDULED, Act.WAIT, False),
    ("resumed, running", review(ready_s_ago=60), S.RUNNING, Act.WAIT, False),
    ("expired, run suspended", review(ready_s_ago=DAY_S), S.PAUSED, Act.CANCEL, True),
    ("expired, run already ended", review(ready_s_ago=DAY_S), S.FAILED, Act.CANCEL, False),
    (
        "expired, no run (command line)",
        review(ready_s_ago=DAY_S, run=None),
        None,
        Act.CANCEL,
        False,
    ),
    ("no run (command line), fresh", review(ready_s_ago=60, run=None), None, Act.WAIT, False),
    ("run cancelled in the UI", review(ready_s_ago=60), S.CANCELLED, Act.CANCEL, False),
    # Any other end of its run leaves the review: the answer starts a new run.
    ("run crashed as it suspended", review(ready_s_ago=60), S.CRASHED, Act.WAIT, False),
    ("run failed", review(ready_s_ago=60), S.FAILED, Act.WAIT, False),
    ("run deleted from Prefect", review(ready_s_ago=60), None, Act.WAIT, False),
]


@pytest.mark.parametrize(
    ("facts", "run", "act", "cancel_run"),
    [pytest.param(*case[1:], id=case[0]) for case in REVIEW_CASES],
)
def test_decide_review(facts: JobFacts, run: RunState | None, act: Act, cancel_run: bool) -> None:
    action = decide(facts, run, NOW, Policy(stale_after_s=60, max_attempts=3, review_ttl_s=DAY_S))
    assert (action.act, action.cancel_run, action.crash_run) == (act, cancel_run, False)
    if act is Act.CANCEL:
        assert action.reason is not None and action.reason.endswith("nothing was written")


def test_an_expired_review_says_after_how_long() -> None:
    action = decide(review(ready_s_ago=7200), S.PAUSED, NOW, Policy(60, 3, review_ttl_s=3600))
    assert action.reason == (
        "nobody confirmed the import within 1 h of its preview; nothing was written"
    )
