"""What the API adds to a job's view: an ETA, a Prefect UI link, and the error report as CSV."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from sqlalchemy import and_, or_, select

from db.models import JobStatus, RowError
from db.repository import ERROR_RECORD_COLUMNS
from db.session import session_scope
from itemsheet.downloads.csv_writer import CsvText, guard_formula
from itemsheet.jobs.views import JobView
from settings import get_settings

CSV_PAGE_ROWS = 2000


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


def iter_errors_csv(job_id: uuid.UUID, *, page_rows: int = CSV_PAGE_ROWS) -> Iterator[str]:
    """A job's row errors as CSV text, page by page, each page read in a short transaction."""
    out = CsvText()
    yield out.rows([ERROR_RECORD_COLUMNS])
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
        if page:
            yield out.rows(
                [row, guard_formula(column), guard_formula(value), guard_formula(message)]
                for row, column, value, message, _ in page
            )
        if len(page) < page_rows:
            return
        after = (page[-1].row, page[-1].id)
