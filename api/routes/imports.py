"""Upload a file as an import job; follow, list, cancel and retry jobs."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    BackgroundTasks,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    UploadFile,
    status,
)
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import key_label
from api.deps import JobIdPath, ReadSessionDep, SessionDep, SettingsDep, TriggerDep, get_dispatcher
from api.schemas import DuplicateOut, ErrorOut, ImportAccepted, JobPage, JobProgress
from api.views import job_links, job_progress
from db.models import ImportMode, JobSource, JobStatus, OnError
from itemsheet.files.storage import FileTooLarge
from itemsheet.jobs.importing import JobOptions
from itemsheet.jobs.undoing import UndoRefused, create_undo_job
from itemsheet.jobs.uploads import DuplicateImport, UnsupportedFile, create_upload_job, store_upload
from itemsheet.jobs.views import (
    JobConflict,
    JobNotFound,
    JobView,
    job_view,
    list_history,
    load_job,
    reopen_for_retry,
    request_cancel,
)
from itemsheet.sheet.header import MAPPING_BYTES, explicit_mapping, mapping_too_big
from itemsheet.sheet.text import check_choices
from orchestration.trigger import TriggerUnavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["imports"], responses={422: {"model": ErrorOut}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}


@router.post(
    "/excel/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportAccepted,
    responses={
        400: {"model": ErrorOut, "description": "The body is not a readable multipart form."},
        409: {"model": DuplicateOut},
        413: {"model": ErrorOut},
        415: {"model": ErrorOut},
    },
)
async def upload_import(
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The spreadsheet or CSV file.")],
    sheet: Annotated[
        str | None,
        # No control characters: no sheet has them, and PostgreSQL text cannot hold NUL.
        Form(
            max_length=255,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Name, or 0-based index in the digits 0-9; a name wins.",
        ),
    ] = None,
    on_error: Annotated[OnError, Form()] = OnError.SKIP,
    dry_run: Annotated[bool, Form()] = False,
    force: Annotated[bool, Form(description="Import even if the same import runs.")] = False,
    mapping: Annotated[
        str | None,
        Form(
            description='JSON object, sheet header -> field or null (ignored): {"Artikelnummer":'
            ' "sku", "Notiz": null}. Other headers are mapped as usual. Headers of at most 255'
            " characters (a preview column's `key`), at most 64 KiB in all.",
        ),
    ] = None,
    header_row: Annotated[
        int | None, Form(ge=1, le=1_048_576, description="The header's row number, if known.")
    ] = None,
    review: Annotated[
        bool, Form(description="Preview first; write only once confirmed (`/confirm`).")
    ] = False,
    encoding: Annotated[
        str | None,
        Form(
            max_length=40,
            description="A text file's encoding (any name Python knows: windows-1252, utf-16,"
            " shift_jis); empty: detected from the bytes.",
        ),
    ] = None,
    delimiter: Annotated[
        str | None,
        Form(max_length=9, description="A text file's delimiter: , ; tab or |; empty: detected."),
    ] = None,
    decimal: Annotated[
        str | None,
        Form(
            max_length=1,
            description="The decimal mark of numbers written as text, . or ,; empty: decided"
            " by the file's values.",
        ),
    ] = None,
    mode: Annotated[
        ImportMode,
        Form(
            description="upsert: create new SKUs and update stored ones; create_only: leave"
            " stored items alone; update_only: create no items. Rows left alone count as"
            " skipped."
        ),
    ] = ImportMode.UPSERT,
    # Text, not a bool: a form without a bool field reads as false (an unticked
    # checkbox), and the guardrails are on unless a client says off.
    guard: Annotated[
        str | None,
        Form(
            max_length=5,
            description="off (or false): skip the guardrails for this import (see the"
            ' README\'s "Guardrails"); on (default): an import that would do something'
            " unusual waits awaiting_review.",
        ),
    ] = None,
) -> ImportAccepted | JSONResponse:
    """Store the file and start its import; the workbook is read by the flow run, not here."""
    if review and dry_run:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "a dry run writes nothing, so it needs no review; choose one of the two",
        )
    guarded = _guard_form(guard)
    try:
        choices = check_choices(encoding, delimiter, decimal)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    options = JobOptions(
        sheet=sheet or None,
        on_error=on_error,
        dry_run=dry_run,
        mode=mode,
        batch_size=settings.rows_per_batch(),
        mapping=_mapping_form(mapping),
        header_row=header_row,
        **choices,
        review=review,
        guard=guarded,
        requested_by=requester(request),
    )
    try:
        stored = await run_in_threadpool(
            store_upload,
            file.file,
            base_url=settings.resolved_storage_url(),
            max_bytes=settings.max_upload_bytes,
            encoding=options.encoding,
        )
    except UnsupportedFile as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, exc.reason) from None
    except FileTooLarge as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, exc.reason) from None
    try:
        job = await run_in_threadpool(
            create_upload_job,
            session,
            stored=stored,
            filename=file.filename,
            options=options,
            force=force,
        )
    except DuplicateImport as exc:
        body = DuplicateOut(detail=str(exc), job_id=exc.job_id, status=exc.status)
        return JSONResponse(body.model_dump(mode="json"), status.HTTP_409_CONFLICT)
    # The flow run reads the job, so it must be committed before Prefect hears of it. The
    # run is created after the answer is sent: the upload never waits for Prefect.
    await run_in_threadpool(session.commit)
    dispatch_after_answer(request, background, job.id)
    links = job_links(request, job.id)
    return ImportAccepted(
        job_id=job.id,
        status=JobStatus.PENDING,
        progress_url=links.progress_url,
        events_url=links.events_url,
    )


@router.get("/excel/import/{job_id}/progress", name="import_progress", responses=NOT_FOUND)
async def import_progress(
    job_id: JobIdPath, request: Request, session: ReadSessionDep
) -> JobProgress:
    """The job's counts, percentage, ETA and links."""
    # One indexed read of one row (about a millisecond) runs on the event loop: a hop to
    # a worker thread would cost more than the read, and this endpoint is polled hardest.
    return job_progress(load_job(session, job_id), job_links(request, job_id))


@router.get("/excel/imports")
def import_history(
    session: ReadSessionDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    source: JobSource | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[A-Za-z0-9_-]*$",
            description="`next_cursor` of the previous page; empty or absent: the first page.",
        ),
    ] = None,
) -> JobPage:
    """Import jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""
    # `?cursor=` is what a client sends for "no cursor" as often as it leaves it out.
    page = list_history(session, limit=limit, cursor=cursor or None, status=status_, source=source)
    return JobPage(items=[job_view(j) for j in page.jobs], next_cursor=page.next_cursor)


@router.post(
    "/excel/import/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, 409: {"model": ErrorOut}},
)
async def cancel_import(job_id: JobIdPath, session: SessionDep, trigger: TriggerDep) -> JobView:
    """Stop a job: at once if it has not started, else after its current batch."""
    job = await run_in_threadpool(request_cancel, session, job_id)
    await run_in_threadpool(session.commit)
    if job.flow_run_id is not None:
        try:
            await trigger.cancel(job.flow_run_id)
        except TriggerUnavailable as exc:
            # The request is recorded; the flow stops at its next batch all the same.
            log.warning("could not cancel flow run %s: %s", job.flow_run_id, exc)
    return job_view(job)


@router.post(
    "/excel/import/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, 409: {"model": ErrorOut}},
)
async def retry_import(
    job_id: JobIdPath, request: Request, background: BackgroundTasks, session: SessionDep
) -> JobView:
    """Run a failed or cancelled job again; it resumes after its last committed batch."""
    job = await run_in_threadpool(reopen_for_retry, session, job_id)
    await run_in_threadpool(session.commit)
    dispatch_after_answer(request, background, job.id)
    return job_view(job)


def _mapping_form(text: str | None) -> dict[str, str | None] | None:
    """The `mapping` form field, checked; 422 with a sentence when it is not one."""
    if not text or not text.strip():
        return None
    if (size := len(text.encode())) > MAPPING_BYTES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(mapping_too_big(size)))
    try:
        given = json.loads(text)
    except ValueError:
        given = None
    if not isinstance(given, dict) or not all(isinstance(v, str | None) for v in given.values()):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            'mapping must be a JSON object of header -> field or null, like {"Preis": "price"}',
        )
    try:
        return explicit_mapping(given)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


def requester(request: Request) -> str:
    """Who asked, as far as the service knows: the label of the API key, or the page.

    Never characters of a key: the job's `requested_by` is shown to everyone who can read
    jobs (as a saved mapping's `saved_by`), and without keys a Bearer value is not one.
    """
    label = key_label(request.scope)
    if label is not None:
        return f"API key {label}"
    return "web page" if request.headers.get("sec-fetch-mode") == "cors" else "API"


@router.post(
    "/excel/import/{job_id}/undo",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, 409: {"model": ErrorOut}},
)
async def undo_import(
    job_id: JobIdPath,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    settings: SettingsDep,
    force: Annotated[
        bool, Query(description="Restore items changed since the import too.")
    ] = False,
) -> JobView:
    """Undo a finished import as a new job (source `undo`): delete the items it created and
    restore the values it overwrote; items changed since are reported, unless `force`."""
    try:
        undo = await run_in_threadpool(
            create_undo_job, session, job_id, force=force, undo_days=settings.undo_days
        )
    except LookupError:
        raise JobNotFound(job_id) from None
    except UndoRefused as exc:
        raise JobConflict(str(exc)) from None
    await run_in_threadpool(session.commit)
    dispatch_after_answer(request, background, undo.id)
    return job_view(undo)


def dispatch_after_answer(request: Request, background: BackgroundTasks, job_id: uuid.UUID) -> None:
    """Have the job's run created once the answer is sent."""
    dispatcher = get_dispatcher(request)
    if dispatcher.running:
        # The dispatcher's own task does it: a client's next request on this connection
        # does not wait for Prefect either.
        dispatcher.kick()
    else:  # an app run without its lifespan (tests): right after the answer
        background.add_task(dispatcher.dispatch, job_id)


def _guard_form(value: str | None) -> bool:
    """The upload's `guard` field: on unless it says off; 422 for another word."""
    word = (value or "on").strip().lower()
    if word in ("on", "true", "1", "yes"):
        return True
    if word in ("off", "false", "0", "no"):
        return False
    raise HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, f"guard must be on or off, not '{word}'"
    )
