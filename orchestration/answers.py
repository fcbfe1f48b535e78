"""The one service that answers a review: confirm, preview again under another mapping or
reading, or reject.

Three callers give answers: the API (`api/routes/review.py`), the command line
(`importer confirm` / `reject`, `cli/review.py`) and the Prefect UI's resume form, which
resumes the suspended run itself. The API and the command line call `answer_review`, which
checks the answer, hands it to the job's suspended run, applies it to the job, and sees
that something carries the job on; the run resumed from the form applies the same answer
with `apply_in_run`. Both apply it with `itemsheet.jobs.review.accept`, which does nothing the
second time, so the caller's answer and the run's own never apply twice.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from anyio import to_thread
from sqlalchemy.orm import Session

from db.repository import get_job
from db.session import session_scope
from itemsheet.jobs.dispatching import request_run
from itemsheet.jobs.review import (
    ReviewAnswer,
    ReviewConflict,
    accept,
    check_answerable,
    refuse_answer,
)
from itemsheet.jobs.views import JobView, job_view, load_job
from itemsheet.sheet.header import explicit_mapping
from orchestration.trigger import TriggerUnavailable

log = logging.getLogger(__name__)


class RunControl(Protocol):
    """What the service asks of Prefect (`orchestration.trigger.PrefectTrigger`)."""

    async def resume_review(self, flow_run_id: uuid.UUID, answer: dict[str, Any]) -> str:
        """Resume a review's suspended run: "resumed", "busy" (on its way) or "ended"."""

    async def cancel(self, flow_run_id: uuid.UUID) -> None:
        """Cancel a flow run that has not finished."""


class AnswerConflict(Exception):
    """The job does not wait for this answer (not awaiting review, answered already, an
    undo under way); `str()` says why."""


class AnswerInvalid(ValueError):
    """The answer itself is wrong (a mapping naming no field, an unknown encoding)."""


class CarryOn(StrEnum):
    """Who carries the job on once the answer is applied."""

    # Its suspended run resumed with the answer, or it was rejected: nothing more to do.
    RUN = "run"
    # Its run had ended: a new one was requested, which a dispatcher creates.
    DISPATCH = "dispatch"
    # Its run had ended, and the caller runs the job in its own process (the command
    # line, for an import it started with `importer import --review`).
    CALLER = "caller"


@dataclass(frozen=True)
class Answered:
    """The job as the answer left it, and who carries it on."""

    job: JobView
    carry_on: CarryOn


def check(
    session: Session, job_id: uuid.UUID, answer: ReviewAnswer
) -> tuple[int, uuid.UUID | None]:
    """The job's review round and run, once the answer may be given now.

    `JobNotFound` (a `LookupError`) for no such job, `AnswerConflict` when it waits for
    no answer (or an undo is under way), `AnswerInvalid` for an answer that names no field
    or reading.
    """
    job = load_job(session, job_id)
    try:
        check_answerable(session, job, answer)
        if answer.mapping is not None:
            explicit_mapping(answer.mapping)
        answer.choices()
    except ReviewConflict as exc:
        raise AnswerConflict(str(exc)) from None
    except ValueError as exc:
        raise AnswerInvalid(str(exc)) from None
    return job.review_round, job.flow_run_id


async def answer_review(
    session: Session,
    job_id: uuid.UUID,
    answer: ReviewAnswer,
    runs: RunControl,
    *,
    run_here: bool = False,
) -> Answered:
    """Answer the job's review and commit `session`: the API's and the command line's way.

    The suspended run is resumed first (a confirm or a new preview): a run that resumes
    at once applies the same answer itself, and whichever comes second finds it applied.
    A run that ended (cancelled in the Prefect UI) or never suspended (`importer import
    --review`) is replaced: by a new run that a dispatcher creates, or, with `run_here`,
    by the caller. A rejected job's suspended run is cancelled once the job is.

    Raises `JobNotFound`, `AnswerConflict`, `AnswerInvalid` (see `check`), and
    `TriggerUnavailable` when the run could not be resumed (nothing is applied then).
    """
    round_, run_id = await to_thread.run_sync(check, session, job_id, answer)
    goes_on = answer.confirm or answer.preview_only
    resumed = "ended"
    if run_id is not None and goes_on:
        resumed = await runs.resume_review(run_id, answer.to_form())
    try:
        applied = await to_thread.run_sync(
            lambda: accept(session, job_id, round_=round_, answer=answer)
        )
    except ReviewConflict as exc:
        raise AnswerConflict(str(exc)) from None
    if not applied and resumed != "resumed":
        raise AnswerConflict("this review was answered already; reload the import")
    job = await to_thread.run_sync(get_job, session, job_id)
    assert job is not None
    carry_on = CarryOn.RUN
    if applied and resumed == "ended" and not job.status.is_terminal:
        if run_here:
            carry_on = CarryOn.CALLER
        else:
            request_run(job, retry=True)
            carry_on = CarryOn.DISPATCH
    await to_thread.run_sync(session.commit)
    if not goes_on and run_id is not None:
        try:
            await runs.cancel(run_id)  # rejected: the suspended run ends too
        except TriggerUnavailable as exc:
            log.warning("could not cancel flow run %s: %s", run_id, exc)
    return Answered(job_view(job), carry_on)


def apply_in_run(job_id: uuid.UUID, answer: ReviewAnswer) -> None:
    """Apply the answer the job's run was resumed with (at the Prefect UI's form, or by
    `answer_review`, whose answer is then applied already) to its current preview.

    Nobody waits for an error here: an answer that names no field is refused into the
    preview (the job keeps waiting, in a new round), and one given while an undo is under
    way leaves the job waiting, untouched.
    """
    with session_scope() as session:
        job = get_job(session, job_id, for_update=True)
        assert job is not None
        try:
            accept(session, job_id, round_=job.review_round, answer=answer)
        except ReviewConflict:
            pass
        except ValueError as exc:
            refuse_answer(session, job_id, str(exc))
