"""Files in the import's shape: the template to fill in, and the items exported so that
importing the file back changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BeforeValidator

from api.deps import ReadSessionDep
from api.schemas import ErrorOut
from db.item_pages import ItemFilter
from itemsheet.downloads.exports import MEDIA_TYPES, FileFormat, check_import_export, export_chunks
from itemsheet.downloads.template import template_bytes

router = APIRouter(tags=["items"], responses={422: {"model": ErrorOut}})


def _attachment(name: str, fmt: FileFormat) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}.{fmt.value}"'}


def _template(fmt: FileFormat) -> Response:
    return Response(
        template_bytes(fmt), media_type=MEDIA_TYPES[fmt], headers=_attachment("items-template", fmt)
    )


@router.get(
    "/excel/template.xlsx",
    name="import_template_xlsx",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPES[FileFormat.XLSX]: {}}}},
)
def import_template_xlsx() -> Response:
    """An items workbook to fill in: the columns in order (SKU marked required), one
    example row, and a second sheet that explains every field."""
    return _template(FileFormat.XLSX)


@router.get(
    "/excel/template.csv",
    name="import_template_csv",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPES[FileFormat.CSV]: {}}}},
)
def import_template_csv() -> Response:
    """An items CSV to fill in: the plain header in the columns' order and one example row."""
    return _template(FileFormat.CSV)


def _iso_time(value: object) -> object:
    """A time is written as ISO 8601 text: a bare number (which pydantic would read as Unix
    seconds) is not one, and the documented schema says so."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(
            "changed_since must be an ISO 8601 time such as 2026-12-01T08:00:00Z, not a number"
        )
    return value


@router.get(
    "/items/export",
    name="export_items",
    response_class=StreamingResponse,
    responses={
        200: {"content": {MEDIA_TYPES[FileFormat.CSV]: {}, MEDIA_TYPES[FileFormat.XLSX]: {}}},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
    },
)
def export_items(
    session: ReadSessionDep,
    fmt: Annotated[FileFormat, Query(alias="format")] = FileFormat.XLSX,
    sku_prefix: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Only SKUs that start with this text (case-sensitive).",
        ),
    ] = None,
    changed_since: Annotated[
        datetime | None,
        BeforeValidator(_iso_time),
        Query(description="Only items changed at or after this ISO 8601 time (UTC if none)."),
    ] = None,
    import_id: Annotated[
        uuid.UUID | None,
        Query(alias="import", description="Only the items this import created or updated."),
    ] = None,
) -> StreamingResponse:
    """Download items as a file that imports back unchanged, streamed a page at a time."""
    if import_id is not None:
        check_import_export(session, import_id)
    if changed_since is not None and changed_since.tzinfo is None:
        changed_since = changed_since.replace(tzinfo=UTC)
    chosen = ItemFilter(sku_prefix=sku_prefix or None, changed_since=changed_since)
    return StreamingResponse(
        export_chunks(fmt, chosen, job_id=import_id),
        media_type=MEDIA_TYPES[fmt],
        headers=_attachment("items", fmt),
    )
