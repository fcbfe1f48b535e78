"""Review before writing: a job's preview, and a person's answer to it."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, HTTPException, Request, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import ImportTrigger, JobIdPath, ReadSessionDep, SessionDep, SettingsDep, TriggerDep
from api.routes.imports import NOT_FOUND, dispatch_after_answer
from api.schemas import ErrorOut, PreviewOut, RemapIn, ReviewIn, SavedMappingOut
from db.repository import get_job
from itemsheet.dispatching import request_run
from itemsheet.header import clip_keys, explicit_mapping
from itemsheet.jobs import JobView, job_view, load_job
from itemsheet.mappings import list_mappings
from itemsheet.review import (
    ReviewAnswer,
    ReviewConflict,
    accept,
    check_answerable,
    expires_at,
    field_choices,
)
from orchestration.trigger import TriggerUnavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["review"], responses={422: {"model": ErrorOut}})
ANSWERED: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    400: {"model": ErrorOut, "description": "The body is not valid JSON."},
    409: {"model": ErrorOut},
    503: {"model": ErrorOut},
}
Answer = Annotated[ReviewIn | None, Body()]


@router.get("/excel/import/{job_id}/preview", responses={**NOT_FOUND, 409: {"model": ErrorOut}})
def import_preview(job_id: JobIdPath, session: ReadSessionDep, settings: SettingsDep) -> PreviewOut:
    """What the import would do: columns, counts, the first (or, when a guardrail
    tripped, the largest) changes, the distributions of price and quantity changes, and
    row errors."""
    job = load_job(session, job_id)
    if not job.review and not job.guard:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "this import was not started with review, so it has no preview",
        )
    preview = job.preview or {}
    until = expires_at(job, timedelta(hours=settings.review_ttl_h))
    return PreviewOut.model_validate(
        {
            "job_id": job.id,
            "status": job.status,
            "round": job.review_round,
            "ready": job.status.value == "awaiting_review",
            "problem": preview.get("problem"),
            "header_row": preview.get("header_row"),
            "columns": preview.get("columns") or [],
            "fields": field_choices(),
            "counts": preview.get("counts"),
            "changes": preview.get("changes") or [],
            "errors": preview.get("errors") or [],
            "on_error": job.on_error.value,
            "expires_at": until.isoformat() if until else None,
            "reading": job.reading,
            "guard": preview.get("guard") or [],
            "chart": preview.get("chart"),
        }
    )


@router.post("/excel/import/{job_id}/confirm", status_code=202, responses=ANSWERED)
async def confirm_import(
    job_id: JobIdPath,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    trigger: TriggerDep,
    body: Answer = None,
) -> JobView:
    """Write the previewed import (a changed `mapping` or reading is previewed again first)."""
    given = body or ReviewIn()
    answer = ReviewAnswer(
        confirm=True,
        mapping=given.mapping,
        encoding=given.encoding,
        delimiter=given.delimiter,
        decimal=given.decimal,
    )
    return await _answer(job_id, answer, request, background, session, trigger)


@router.post("/excel/import/{job_id}/preview", status_code=202, responses=ANSWERED)
async def repreview_import(
    job_id: JobIdPath,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    trigger: TriggerDep,
    body: Annotated[RemapIn, Body()],
) -> JobView:
    """Preview the import again under another column mapping or reading; it then waits again."""
    answer = ReviewAnswer(
        confirm=False,
        mapping=body.mapping,
        preview_only=True,
        encoding=body.encoding,
        delimiter=body.delimiter,
        decimal=body.decimal,
    )
    return await _answer(job_id, answer, request, background, session, trigger)


@router.post("/excel/import/{job_id}/reject", status_code=202, responses=ANSWERED)
async def reject_import(
    job_id: JobIdPath,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    trigger: TriggerDep,
) -> JobView:
    """End the import `cancelled`: nothing is written."""
    answer = ReviewAnswer(confirm=False)
    return await _answer(job_id, answer, request, background, session, trigger)


@router.get("/excel/mappings")
def saved_mappings(session: ReadSessionDep) -> list[SavedMappingOut]:
    """Column mappings saved by imports, newest first, with who saved them and when."""
    return [
        SavedMappingOut(
            header_key=m.header_key,
            headers=list(m.headers),
            # Clipped as keys are now, also for a mapping saved before they were.
            columns=clip_keys(m.columns),
            saved_by=m.saved_by,
            saved_at=m.saved_at.isoformat(),
            job_id=m.job_id,
        )
        for m in list_mappings(session)
    ]


async def _answer(
    job_id: uuid.UUID,
    answer: ReviewAnswer,
    request: Request,
    background: BackgroundTasks,
    session: Session,
    trigger: ImportTrigger,
) -> JobView:
    """Hand the answer to the job's suspended run, and apply it to the job.

    The run is resumed first: a run that resumes at once applies the same answer itself
    (`flows.import_items`), and whichever comes second finds it applied. A run that
    ended (cancelled in the Prefect UI) or never suspended (`importer import --review`)
    is replaced by a new one.
    """
    job = await run_in_threadpool(load_job, session, job_id)
    try:
        await run_in_threadpool(check_answerable, session, job, answer)
        if answer.mapping is not None:
            explicit_mapping(answer.mapping)
        answer.choices()
    except ReviewConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    round_, run_id = job.review_round, job.flow_run_id
    resumed = "ended"
    if run_id is not None and (answer.confirm or answer.preview_only):
        try:
            resumed = await trigger.resume_review(run_id, answer.to_form())
        except TriggerUnavailable as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    try:
        applied = await run_in_threadpool(accept, session, job_id, round_=round_, answer=answer)
    except ReviewConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if not applied and resumed != "resumed":
        raise HTTPException(
            status.HTTP_409_CONFLICT, "this review was answered already; reload the import"
        )
    fresh = await run_in_threadpool(get_job, session, job_id)
    assert fresh is not None
    if applied and resumed == "ended" and not fresh.status.is_terminal:
        request_run(fresh, retry=True)
    await run_in_threadpool(session.commit)
    if not answer.confirm and not answer.preview_only and run_id is not None:
        try:
            await trigger.cancel(run_id)  # rejected: the suspended run ends too
        except TriggerUnavailable as exc:
            log.warning("could not cancel flow run %s: %s", run_id, exc)
    elif applied and resumed == "ended":
        dispatch_after_answer(request, background, fresh.id)
    return job_view(fresh)
