"""The undo-import flow under a real Prefect server, on SQLite and PostgreSQL: an undone
import leaves the items exactly as before it, and items changed since are left alone."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import ImportJob, Item, ItemUndo, JobSource, JobStatus
from db.repository import get_job, list_row_errors
from db.session import session_scope
from flows.undo_import import undo_import
from itemsheet.jobs.undoing import UndoRefused, create_undo_job
from tests.contract.workbooks import write_xlsx
from tests.flows.test_import_items import queue_job, run_job

pytestmark = pytest.mark.usefixtures("prefect_server", "importer_env")

HEADER = ["SKU", "Name", "Description", "Category", "Unit", "Price", "Qty", "Barcode"]
SKUS_A = [f"U-{i:05d}" for i in range(1000)]


def sheet_a(path: Path) -> Path:
    """Import A: 1,000 new items with every field."""
    rows = [
        [s, f"Item {i}", f"about {i}", f"cat {i % 7}", "pcs", Decimal(i) + Decimal("0.25"), i, None]
        for i, s in enumerate(SKUS_A)
    ]
    return write_xlsx(path, [HEADER, *rows])


def sheet_b(path: Path) -> Path:
    """Import B: new prices for 300 of A's items (10 cents more: within the guardrails) and
    200 new items; only SKU, Name, Price."""
    rows: list[list[Any]] = [
        [s, None, Decimal(i) + Decimal("0.35")] for i, s in enumerate(SKUS_A[:300])
    ]
    rows += [[f"N-{i:05d}", f"New {i}", Decimal(i)] for i in range(200)]
    return write_xlsx(path, [["SKU", "Name", "Price"], *rows])


def sheet_c(path: Path) -> Path:
    """Import C: changes 10 of the items B updated (quantity only: another field)."""
    rows = [[s, 7_000 + i] for i, s in enumerate(SKUS_A[:10])]
    return write_xlsx(path, [["SKU", "Qty"], *rows])


def catalogue() -> dict[str, tuple[Any, ...]]:
    """Every field of every item but `updated_at`, which an undo sets (it is a change)."""
    with session_scope(write=False) as session:
        rows = session.execute(
            select(
                Item.sku,
                Item.id,
                Item.name,
                Item.description,
                Item.category,
                Item.unit,
                Item.price,
                Item.quantity,
                Item.barcode,
                Item.created_at,
            )
        ).all()
    return {r[0]: (*r[1:6], Decimal(r[6]).quantize(Decimal("0.0001")), *r[7:]) for r in rows}


def job(job_id: uuid.UUID) -> ImportJob:
    with session_scope(write=False) as session:
        found = get_job(session, job_id)
        assert found is not None
        return found


def undo(import_id: uuid.UUID, *, force: bool = False) -> ImportJob:
    with session_scope() as session:
        undo_id = create_undo_job(session, import_id, force=force, undo_days=30).id
    undo_import(job_id=str(undo_id), return_state=True)
    return job(undo_id)


def import_file(path: Path, **options: Any) -> ImportJob:
    done = run_job(queue_job(path, batch_size=128, **options))
    assert done.status is JobStatus.COMPLETED, done.error
    return done


def test_undo_of_an_import_leaves_every_item_as_it_was_and_marks_it_undone(
    tmp_path: Path,
) -> None:
    import_file(sheet_a(tmp_path / "a.xlsx"))
    after_a = catalogue()
    b = import_file(sheet_b(tmp_path / "b.xlsx"))
    assert (b.created, b.updated, b.unchanged) == (200, 300, 0)
    assert catalogue() != after_a
    done = undo(b.id)
    assert done.status is JobStatus.COMPLETED, done.error
    assert (done.source, done.undo_of) == (JobSource.UNDO, b.id)
    assert (done.total_rows, done.processed_rows) == (500, 500)
    assert (done.deleted, done.updated, done.failed) == (200, 300, 0)
    assert catalogue() == after_a
    undone = job(b.id)
    assert undone.status is JobStatus.UNDONE
    assert (undone.created, undone.updated, undone.unchanged) == (200, 300, 0)  # counts stay
    with session_scope() as session, pytest.raises(UndoRefused, match="already been undone"):
        create_undo_job(session, b.id, force=False, undo_days=30)


def test_items_changed_since_the_import_are_reported_and_forced_back_only_on_request(
    tmp_path: Path,
) -> None:
    import_file(sheet_a(tmp_path / "a.xlsx"))
    after_a = catalogue()
    b = import_file(sheet_b(tmp_path / "b.xlsx"))
    after_b = catalogue()
    c = import_file(sheet_c(tmp_path / "c.xlsx"))
    assert c.updated == 10
    after_c = catalogue()
    done = undo(b.id)
    assert done.status is JobStatus.COMPLETED
    assert (done.deleted, done.updated, done.failed) == (200, 290, 10)
    with session_scope(write=False) as session:
        errors = list_row_errors(session, done.id, limit=100)
    assert sorted(e["value"] for e in errors) == SKUS_A[:10]
    assert {e["message"] for e in errors} == {
        f"item '{s}' changed since the import" for s in SKUS_A[:10]
    }
    now = catalogue()
    for sku in SKUS_A[:10]:  # left as C made them: B's price and C's quantity
        assert now[sku] == after_c[sku] and now[sku][5] == after_b[sku][5]
    for sku in SKUS_A[10:]:
        assert now[sku] == after_a[sku]
    assert not any(s.startswith("N-") for s in now)


def test_a_forced_undo_restores_every_item_it_changed_even_those_changed_since(
    tmp_path: Path,
) -> None:
    import_file(sheet_a(tmp_path / "a.xlsx"))
    after_a = catalogue()
    b = import_file(sheet_b(tmp_path / "b.xlsx"))
    import_file(sheet_c(tmp_path / "c.xlsx"))
    done = undo(b.id, force=True)
    assert (done.deleted, done.updated, done.failed) == (200, 300, 0)
    now = catalogue()
    # B's fields (the price) are back everywhere; C's quantity on its 10 items stays.
    assert {s: v[5] for s, v in now.items()} == {s: v[5] for s, v in after_a.items()}
    assert {s: v for s, v in now.items() if s not in SKUS_A[:10]} == {
        s: v for s, v in after_a.items() if s not in SKUS_A[:10]
    }
    assert job(b.id).status is JobStatus.UNDONE


def test_undoing_imports_newest_first_reports_no_conflicts_but_still_sees_later_edits(
    tmp_path: Path,
) -> None:
    a = import_file(sheet_a(tmp_path / "a.xlsx"))
    b = import_file(sheet_b(tmp_path / "b.xlsx"))
    assert undo(b.id).failed == 0
    # B's undo gave the 300 items it restored a new updated_at; they are as A left them,
    # so A's undo restores them all, except the one the application edits now.
    with session_scope() as session:
        edited = session.scalars(select(Item).where(Item.sku == SKUS_A[5])).one()
        edited.description = "edited by hand"
    done = undo(a.id)
    assert done.status is JobStatus.COMPLETED, done.error
    assert (done.deleted, done.updated, done.failed) == (999, 0, 1)
    with session_scope(write=False) as session:
        [error] = list_row_errors(session, done.id, limit=10)
    assert error["message"] == f"item '{SKUS_A[5]}' changed since the import"
    assert set(catalogue()) == {SKUS_A[5]}
    assert job(a.id).status is JobStatus.UNDONE


def test_dry_runs_and_unchanged_rows_record_no_before_image(tmp_path: Path) -> None:
    a = import_file(sheet_a(tmp_path / "a.xlsx"))
    dry = import_file(sheet_b(tmp_path / "b.xlsx"), dry_run=True)
    again = run_job(queue_job(sheet_a(tmp_path / "a2.xlsx"), batch_size=128))
    assert (again.unchanged, again.created, again.updated) == (1000, 0, 0)
    with session_scope(write=False) as session:
        entries = dict(
            session.execute(
                select(ItemUndo.job_id, func.sum(ItemUndo.entries)).group_by(ItemUndo.job_id)
            ).all()
        )
    assert entries == {a.id: 1000}  # A created 1,000 items; the dry run and the rerun: none
    with session_scope() as session, pytest.raises(UndoRefused, match="dry run"):
        create_undo_job(session, dry.id, force=False, undo_days=30)
