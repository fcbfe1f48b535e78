"""A job's row errors: a JSON page, or the whole report as a CSV download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import JobIdPath, ReadSessionDep
from api.schemas import ErrorOut, RowErrorOut, RowErrorPage
from api.services.reports import iter_errors_csv
from db.repository import count_row_errors, list_row_errors
from itemsheet.jobs import load_job

# An offset is read past row by row; beyond this, page by key (`after_row`).
MAX_OFFSET = 100_000
MAX_ROW = 2**31 - 1  # the row column's range on every database
router = APIRouter(tags=["imports"], responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})


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
