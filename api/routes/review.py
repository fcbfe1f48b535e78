"""Review before writing: a job's preview, and a person's answer to it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, HTTPException, Request, status
from sqlalchemy.orm import Session

from api.deps import ImportTrigger, JobIdPath, ReadSessionDep, SessionDep, SettingsDep, TriggerDep
from api.routes.imports import NOT_FOUND, dispatch_after_answer
from api.schemas import ErrorOut, PreviewOut, RemapIn, ReviewIn, SavedMappingOut
from itemsheet.jobs.mappings import list_mappings
from itemsheet.jobs.review import ReviewAnswer, expires_at, field_choices
from itemsheet.jobs.views import JobView, load_job
from itemsheet.sheet.header import clip_keys
from orchestration.answers import AnswerConflict, AnswerInvalid, CarryOn, answer_review
from orchestration.trigger import TriggerUnavailable

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
    """Answer through the review service (`orchestration.answers`); a new run it requested
    is created right after."""
    try:
        answered = await answer_review(session, job_id, answer, trigger)
    except AnswerConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except AnswerInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except TriggerUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    if answered.carry_on is CarryOn.DISPATCH:
        dispatch_after_answer(request, background, job_id)
    return answered.job
