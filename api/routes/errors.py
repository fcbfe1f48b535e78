"""A job's row errors: a JSON page, the whole report as a CSV download, and the rejected
rows themselves as a file to fix and upload again."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import JobIdPath, ReadSessionDep
from api.schemas import ErrorOut, RowErrorOut, RowErrorPage
from api.services.reports import iter_errors_csv
from db.repository import count_row_errors, list_row_errors
from itemsheet.downloads.rejected import NoRejectedRows, RejectedGone, rejected_file
from itemsheet.jobs.views import load_job
from itemsheet.sheet.errors import SheetError

# An offset is read past row by row; beyond this, page by key (`after_row`).
MAX_OFFSET = 100_000
MAX_ROW = 2**31 - 1  # the row column's range on every database
router = APIRouter(tags=["imports"], responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})
MEDIA_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


@router.get("/excel/import/{job_id}/errors", name="import_errors")
def import_errors(
    job_id: JobIdPath,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_OFFSET,
            description="Errors to skip; for deep pages use `after_row`, which reads no"
            " skipped rows.",
        ),
    ] = 0,
    after_row: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_ROW,
            description="Start after this sheet row: pass `next_after_row` of the previous page.",
        ),
    ] = None,
) -> RowErrorPage:
    """A page of the job's row errors, in sheet order, with their total."""
    load_job(session, job_id)
    items = list_row_errors(session, job_id, limit=limit, offset=offset, after_row=after_row)
    return RowErrorPage(
        job_id=job_id,
        total=count_row_errors(session, job_id),
        limit=limit,
        offset=offset,
        after_row=after_row,
        next_after_row=items[-1]["row"] if len(items) == limit else None,
        items=[RowErrorOut.model_validate(item) for item in items],
    )


@router.get(
    "/excel/import/{job_id}/errors.csv",
    name="import_errors_csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "row,column,value,message"}},
)
def import_errors_csv(job_id: JobIdPath, session: ReadSessionDep) -> StreamingResponse:
    """Download the job's row errors as CSV: every cell quoted, formula-like ones with `'`."""
    load_job(session, job_id)
    return StreamingResponse(
        iter_errors_csv(job_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{job_id}-errors.csv"'},
    )


@router.get(
    "/excel/import/{job_id}/rejected.{kind}",
    name="import_rejected",
    response_class=Response,
    responses={
        200: {
            "content": {media: {} for media in MEDIA_TYPES.values()},
            "description": "The failed rows as they were in the file, with an Error column.",
        },
        409: {"model": ErrorOut, "description": "No failed rows, or the file reads otherwise."},
        410: {"model": ErrorOut, "description": "The import's stored file is gone."},
    },
)
async def import_rejected(job_id: JobIdPath, kind: Literal["xlsx", "csv"]) -> Response:
    """Download the failed rows as they were in the file (every column, the header row),
    with an `Error` column: fix the cells and upload the file again; the import ignores
    that column. When more rows failed than the job keeps errors of, the last row says so.
    """
    try:
        name, content = await run_in_threadpool(rejected_file, job_id, kind)
    except RejectedGone as exc:
        raise HTTPException(status.HTTP_410_GONE, str(exc)) from exc
    except NoRejectedRows as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except SheetError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"the stored file cannot be read again: {exc.reason}"
        ) from exc
    # The upload's name is the client's: plain ASCII for old clients, the rest encoded.
    fallback = re.sub(r'[^\x20-\x7e]|["\\]', "_", name)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"
    return Response(
        content, media_type=MEDIA_TYPES[kind], headers={"Content-Disposition": disposition}
    )
