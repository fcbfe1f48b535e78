"""What the API adds to a job's view: an ETA, a Prefect UI link, and the error report as CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator

from sqlalchemy import and_, or_, select

from db.models import JobStatus, RowError
from db.repository import ERROR_RECORD_COLUMNS
from db.session import session_scope
from itemsheet.jobs import JobView
from settings import get_settings

# A spreadsheet treats a cell starting with one of these as a formula (or DDE call).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_PAGE_ROWS = 2000
# Excel reads a CSV as UTF-8 only when it starts with a byte order mark.
UTF8_BOM = "\ufeff"


def eta_seconds(view: JobView) -> float | None:
    """Seconds until a running job is done, from its rate and remaining rows; None if unknown."""
    if view.status is JobStatus.COMPLETED:
        return 0.0
    total, rate = view.total_rows, view.rows_per_s
    if view.status is not JobStatus.PROCESSING or total is None or not rate:
        return None
    return round(max(total - view.processed_rows, 0) / rate, 1)


def prefect_ui_base() -> str | None:
    """The Prefect UI's base URL: our setting, else Prefect's own (derived from its API URL)."""
    configured = get_settings().prefect_ui_url
    if configured:
        return configured.rstrip("/")
    try:
        from prefect.settings import get_current_settings
    except ImportError:  # pragma: no cover - Prefect is a dependency, but the link is optional
        return None
    derived = get_current_settings().ui_url
    return derived.rstrip("/") if derived else None


def flow_run_url(flow_run_id: uuid.UUID | str | None) -> str | None:
    """A link to a flow run in the Prefect UI, or None without a run or a known UI."""
    base = prefect_ui_base() if flow_run_id else None
    return f"{base}/runs/flow-run/{flow_run_id}" if base else None


def neutralise_cell(text: str | None) -> str:
    """A CSV cell no spreadsheet runs as a formula: a leading `=+-@`, tab or CR gets a `'`."""
    if not text:
        return ""
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def iter_errors_csv(job_id: uuid.UUID, *, page_rows: int = CSV_PAGE_ROWS) -> Iterator[str]:
    """A job's row errors as CSV text, page by page, each page read in a short transaction."""
    buffer = io.StringIO()
    # Every cell quoted: Excel in locales whose list separator is `;` (de, fr, nl) reads a
    # comma CSV at `;` and would split an unquoted `x;=HYPERLINK(...)` into a formula cell.
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(ERROR_RECORD_COLUMNS)
    yield UTF8_BOM + _drain(buffer)
    after: tuple[int, int] | None = None
    while True:
        query = select(RowError.row, RowError.column, RowError.value, RowError.message, RowError.id)
        query = query.where(RowError.job_id == job_id)
        if after is not None:
            query = query.where(
                or_(RowError.row > after[0], and_(RowError.row == after[0], RowError.id > after[1]))
            )
        with session_scope(write=False) as session:
            page = session.execute(query.order_by(RowError.row, RowError.id).limit(page_rows)).all()
        for row, column, value, message, _ in page:
            writer.writerow(
                [row, neutralise_cell(column), neutralise_cell(value), neutralise_cell(message)]
            )
        if page:
            yield _drain(buffer)
        if len(page) < page_rows:
            return
        after = (page[-1].row, page[-1].id)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
