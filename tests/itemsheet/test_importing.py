"""The import service's batches on SQLite and PostgreSQL, without Prefect: a sheet whose
only column is the SKU, written, dry, previewed for a review and under on_error=abort."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import func, select

from db.models import ImportJob, Item, ItemUndo, JobSource, OnError
from db.repository import get_job, list_row_errors
from db.session import session_scope
from itemsheet.jobs.importing import BatchOutcome, apply_batch, begin_attempt, record_abort

SEEDED = datetime(2026, 6, 1, tzinfo=UTC)
LATER = datetime(2026, 6, 2, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def validated(items: list[dict[str, Any]]) -> pl.DataFrame:
    """Valid rows as the reader hands them to `apply_batch`, from sheet row 2 on."""
    frame = pl.DataFrame(items, schema={c: pl.String for c in items[0]}, orient="row")
    return frame.with_columns(
        pl.int_range(2, 2 + frame.height).alias("row"),
        *(pl.lit(None, pl.String).alias(c) for c in ("error_column", "error_value")),
        pl.lit(None, pl.String).alias("error_message"),
    )


def start_job(columns: list[str], **options: Any) -> tuple[uuid.UUID, int]:
    """A job of `columns` under a first attempt: its id and attempt number."""
    with session_scope() as session:
        job = ImportJob(
            source=JobSource.CLI,
            filename="items.csv",
            file_sha256="cd" * 32,
            file_size=1,
            file_uri="memory://cd",
            batch_size=100,
            columns=columns,
            warnings=[],
            **options,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    with session_scope() as session:
        attempt = begin_attempt(session, job_id, flow_run_id=None)
    assert attempt is not None
    return job_id, attempt


def write(job_id: uuid.UUID, attempt: int, rows: pl.DataFrame) -> BatchOutcome | None:
    with session_scope() as session:
        return apply_batch(session, job_id, attempt=attempt, batch_no=1, rows=rows, now=LATER)


def stored() -> dict[str, tuple[str, datetime]]:
    """Each item's name and `updated_at`."""
    with session_scope(write=False) as session:
        return {i.sku: (i.name, i.updated_at) for i in session.scalars(select(Item)).all()}


def before_images(job_id: uuid.UUID) -> int:
    with session_scope(write=False) as session:
        query = select(func.count()).select_from(ItemUndo).where(ItemUndo.job_id == job_id)
        return int(session.scalar(query) or 0)


@pytest.fixture
def seeded(importer_env: Path) -> dict[str, tuple[str, datetime]]:
    """Items A-1 and A-2, written by an import of SKU and name; what is stored."""
    job_id, attempt = start_job(["sku", "name"])
    rows = validated([{"sku": "A-1", "name": "One"}, {"sku": "A-2", "name": "Two"}])
    with session_scope() as session:
        apply_batch(session, job_id, attempt=attempt, batch_no=1, rows=rows, now=SEEDED)
    return stored()


SKUS_ALONE = validated([{"sku": "A-1"}, {"sku": "NEW-1"}, {"sku": "A-2"}])
NAME_REQUIRED = {
    "row": 3,
    "column": "name",
    "value": None,
    "message": "name is required to create item 'NEW-1'",
}


@pytest.mark.parametrize(
    "options",
    [{}, {"dry_run": True}, {"review": True, "previewing": True}],
    ids=["written", "dry-run", "review-preview"],
)
def test_a_sheet_of_skus_alone_finds_existing_items_unchanged_and_writes_nothing(
    options: dict[str, Any], seeded: dict[str, tuple[str, datetime]]
) -> None:
    job_id, attempt = start_job(["sku"], **options)
    assert write(job_id, attempt, SKUS_ALONE) == BatchOutcome(0, 0, 2, 1)
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        counts = (job.created, job.updated, job.unchanged, job.failed, job.processed_rows)
        errors = list_row_errors(session, job_id)
        preview = job.preview
    assert counts == (0, 0, 2, 1, 3)
    assert errors == [NAME_REQUIRED]
    assert stored() == seeded  # not even `updated_at` moved
    assert before_images(job_id) == 0  # nothing for an undo to do
    if options.get("previewing"):
        assert preview is None or not preview.get("changes")


def test_on_error_abort_with_skus_alone_fails_for_a_new_sku_and_writes_existing_ones_as_unchanged(
    seeded: dict[str, tuple[str, datetime]],
) -> None:
    job_id, _ = start_job(["sku"], on_error=OnError.ABORT)
    with session_scope() as session:
        reason = record_abort(session, job_id, [SKUS_ALONE])
    assert reason == "1 of 3 rows are invalid and on_error is abort; nothing was imported"
    with session_scope(write=False) as session:
        assert list_row_errors(session, job_id) == [NAME_REQUIRED]

    known = validated([{"sku": "A-2"}, {"sku": "A-1"}])
    job_id, attempt = start_job(["sku"], on_error=OnError.ABORT)
    with session_scope() as session:
        assert record_abort(session, job_id, [known]) is None
    assert write(job_id, attempt, known) == BatchOutcome(0, 0, 2, 0)
    assert stored() == seeded
    assert before_images(job_id) == 0
