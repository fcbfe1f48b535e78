"""One service answers a review, for the API, the command line and the Prefect form alike.

The API's own answers are in `tests/api/test_review.py`; here the service itself, and the
command line's way through it (`cli.review.answer_review`), which took a different path
before (it did not resume a new preview's run).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import typer

from cli import review as cli_review
from db.models import JobStatus
from db.session import session_scope
from flows.import_items import ReviewInput
from itemsheet.jobs.review import REJECTED_REASON, ReviewAnswer
from orchestration.answers import (
    AnswerConflict,
    Answered,
    AnswerInvalid,
    CarryOn,
    answer_review,
    apply_in_run,
)
from orchestration.trigger import TriggerUnavailable
from tests.api.helpers import FakeTrigger, UnavailableTrigger, read_job
from tests.api.test_review import waiting_job

pytestmark = pytest.mark.usefixtures("importer_env")


def answer(
    job_id: uuid.UUID,
    given: ReviewAnswer,
    runs: FakeTrigger | UnavailableTrigger,
    *,
    run_here: bool = False,
) -> Answered:
    async def go() -> Answered:
        with session_scope() as session:
            return await answer_review(session, job_id, given, runs, run_here=run_here)

    return asyncio.run(go())


def test_a_confirm_resumes_the_suspended_run_which_carries_the_job_on() -> None:
    run, runs = uuid.uuid4(), FakeTrigger()
    job_id = waiting_job(run=run)
    answered = answer(job_id, ReviewAnswer(confirm=True), runs)
    assert runs.resumed == [(run, ReviewAnswer().to_form())]
    assert answered.carry_on is CarryOn.RUN
    assert answered.job.status is JobStatus.PENDING
    assert read_job(job_id).run_requested_at is None  # no second run is asked for


@pytest.mark.parametrize("run_here", [False, True], ids=["api", "cli"])
def test_a_new_preview_resumes_the_run_for_every_caller(run_here: bool) -> None:
    run, runs = uuid.uuid4(), FakeTrigger()
    job_id = waiting_job(run=run)
    given = ReviewAnswer(confirm=False, preview_only=True, mapping={"Preis": "price"})
    answered = answer(job_id, given, runs, run_here=run_here)
    assert [r for r, _ in runs.resumed] == [run]
    assert answered.carry_on is CarryOn.RUN
    job = read_job(job_id)
    assert (job.status, job.previewing, job.review_round) == (JobStatus.PENDING, True, 1)
    assert job.reviewed_at is None  # only previewed, not confirmed


def test_a_job_whose_run_ended_gets_a_new_run_unless_the_caller_runs_it() -> None:
    runs = FakeTrigger(resume_answer="ended")
    by_api = waiting_job(run=uuid.uuid4())
    assert answer(by_api, ReviewAnswer(), runs).carry_on is CarryOn.DISPATCH
    assert read_job(by_api).run_requested_at is not None  # a dispatcher creates the run
    by_cli = waiting_job(run=uuid.uuid4())
    assert answer(by_cli, ReviewAnswer(), runs, run_here=True).carry_on is CarryOn.CALLER
    # The command line runs it itself: no dispatcher may start a second run.
    assert read_job(by_cli).run_requested_at is None
    assert read_job(by_cli).status is JobStatus.PENDING


def test_a_reject_cancels_the_job_and_then_its_run_without_resuming_it() -> None:
    run, runs = uuid.uuid4(), FakeTrigger()
    job_id = waiting_job(run=run)
    answered = answer(job_id, ReviewAnswer(confirm=False), runs)
    assert (answered.job.status, answered.job.error) == (JobStatus.CANCELLED, REJECTED_REASON)
    assert (runs.resumed, runs.cancelled) == ([], [run])
    assert answered.carry_on is CarryOn.RUN


def test_an_answer_given_twice_is_refused_the_second_time() -> None:
    runs = FakeTrigger(resume_answer="busy")  # the run is on its way with the first answer
    job_id = waiting_job(run=uuid.uuid4())
    answer(job_id, ReviewAnswer(), FakeTrigger())
    with pytest.raises(AnswerConflict, match="not awaiting review"):
        answer(job_id, ReviewAnswer(), runs)
    assert runs.resumed == []


def test_a_wrong_answer_is_refused_before_the_run_hears_of_it() -> None:
    runs = FakeTrigger()
    job_id = waiting_job(run=uuid.uuid4())
    with pytest.raises(AnswerInvalid):
        answer(job_id, ReviewAnswer(mapping={"Preis": "no such field"}), runs)
    with pytest.raises(AnswerInvalid):
        answer(job_id, ReviewAnswer(delimiter="::"), runs)
    assert runs.resumed == []
    assert read_job(job_id).status is JobStatus.AWAITING_REVIEW


def test_an_answer_that_cannot_reach_the_run_changes_nothing() -> None:
    job_id = waiting_job(run=uuid.uuid4())
    with pytest.raises(TriggerUnavailable):
        answer(job_id, ReviewAnswer(), UnavailableTrigger())
    assert read_job(job_id).status is JobStatus.AWAITING_REVIEW


def test_the_command_line_confirms_an_import_it_runs_itself(importer_env: Path) -> None:
    """`importer import --review` ran in the CLI's process: no run is left to resume, so
    the command line carries the job on (and asks Prefect nothing)."""
    job_id = waiting_job(run=None)
    assert cli_review.answer_review(job_id, ReviewAnswer(confirm=True)) is True
    job = read_job(job_id)
    assert (job.status, job.run_requested_at) == (JobStatus.PENDING, None)


def test_the_command_line_says_why_an_answer_is_refused(importer_env: Path) -> None:
    job_id = waiting_job(run=None)
    assert cli_review.answer_review(job_id, ReviewAnswer(confirm=False)) is False
    assert read_job(job_id).error == REJECTED_REASON
    with pytest.raises(typer.BadParameter, match="there is nothing to confirm"):
        cli_review.answer_review(job_id, ReviewAnswer(confirm=True))
    with pytest.raises(typer.BadParameter, match="no import job"):
        cli_review.answer_review(uuid.uuid4(), ReviewAnswer(confirm=True))


def test_the_prefect_form_is_the_answer_and_its_wrong_answer_is_shown_in_the_preview() -> None:
    assert list(ReviewInput.model_fields) == list(ReviewAnswer.model_fields)
    assert all(f.description for f in ReviewInput.model_fields.values())  # the form's help
    job_id = waiting_job(run=uuid.uuid4())
    form = ReviewInput(confirm=True, mapping={"Preis": "no such field"})
    apply_in_run(job_id, ReviewAnswer.model_validate(form.to_form()))
    job = read_job(job_id)
    assert job.status is JobStatus.AWAITING_REVIEW and job.review_round == 1
    assert "no such field" in (job.preview or {}).get("problem", "")
