"""Before-images and undo batches on SQLite and PostgreSQL, without Prefect: what a batch
records, what an undo batch restores, what it leaves alone, and undo retention."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select, text

from db.models import ImportJob, Item, ItemRestored, ItemUndo, JobSource, JobStatus, utcnow
from db.repository import get_job, list_row_errors
from db.session import reset_engines, session_scope
from itemsheet.housekeeping.retention import clean_up
from itemsheet.jobs.importing import apply_batch, begin_attempt, finish_job
from itemsheet.jobs.undoing import (
    UndoFacts,
    UndoRefused,
    apply_undo_batch,
    create_undo_job,
    finish_undo,
    plan_undo,
    refusal,
)
from settings import get_settings

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def rows(items: list[dict[str, Any]], start: int = 2) -> pl.DataFrame:
    """Validated rows as the reader hands them to `apply_batch`."""
    types = {"sku": pl.String, "name": pl.String, "price": pl.Decimal(18, 4)}
    frame = pl.DataFrame(items, schema={c: types[c] for c in items[0]}, orient="row")
    return frame.with_columns(
        pl.int_range(start, start + frame.height).alias("row"),
        *(pl.lit(None, pl.String).alias(c) for c in ("error_column", "error_value")),
        pl.lit(None, pl.String).alias("error_message"),
    )


def start_import(
    *, dry_run: bool = False, columns: tuple[str, ...] = ("sku", "name", "price")
) -> tuple[uuid.UUID, int]:
    """A new import of `columns` under its first attempt: its id and attempt number."""
    with session_scope() as session:
        job = ImportJob(
            source=JobSource.CLI,
            filename="items.csv",
            file_sha256="ab" * 32,
            file_size=1,
            file_uri="memory://ab",
            batch_size=100,
            dry_run=dry_run,
            columns=list(columns),
            warnings=[],
        )
        session.add(job)
        session.flush()
        job_id = job.id
    with session_scope() as session:
        attempt = begin_attempt(session, job_id, flow_run_id=None)
    assert attempt is not None
    return job_id, attempt


def run_import(
    batches: list[list[dict[str, Any]]],
    *,
    dry_run: bool = False,
    columns: tuple[str, ...] = ("sku", "name", "price"),
) -> uuid.UUID:
    """An import of `batches` (of `columns`), written batch by batch and completed."""
    job_id, attempt = start_import(dry_run=dry_run, columns=columns)
    for number, batch in enumerate(batches, start=1):
        with session_scope() as session:
            apply_batch(session, job_id, attempt=attempt, batch_no=number, rows=rows(batch))
    with session_scope() as session:
        finish_job(session, job_id, JobStatus.COMPLETED)
    return job_id


def run_undo(import_id: uuid.UUID, *, force: bool = False) -> ImportJob:
    """Create and carry out an undo of `import_id`, batch by batch."""
    with session_scope() as session:
        undo_id = create_undo_job(session, import_id, force=force, undo_days=30).id
    with session_scope() as session:
        attempt = begin_attempt(session, undo_id, flow_run_id=None)
        batches = plan_undo(session, undo_id)
    assert attempt is not None and isinstance(batches, int)
    for number in range(1, batches + 1):
        with session_scope() as session:
            assert apply_undo_batch(session, undo_id, attempt=attempt, batch_no=number)
        with session_scope() as session:  # a batch committed before is not undone twice
            assert not apply_undo_batch(session, undo_id, attempt=attempt, batch_no=number)
    with session_scope() as session:
        finish_undo(session, undo_id)
    with session_scope(write=False) as session:
        undo = get_job(session, undo_id)
        assert undo is not None
        return undo


def catalogue() -> dict[str, tuple[str, Decimal | None]]:
    with session_scope(write=False) as session:
        found = session.scalars(select(Item)).all()
        return {
            i.sku: (i.name, None if i.price is None else Decimal(i.price).quantize(Decimal("0.01")))
            for i in found
        }


def images(job_id: uuid.UUID) -> list[tuple[list[str], list[Any]]]:
    with session_scope(write=False) as session:
        found = session.scalars(
            select(ItemUndo).where(ItemUndo.job_id == job_id).order_by(ItemUndo.batch_no)
        ).all()
        return [(json.loads(i.created), json.loads(i.changed)) for i in found]


def _stamp(text: str) -> datetime:
    """A recorded `updated_at` (SQLite's naive UTC text) as an aware time."""
    found = datetime.fromisoformat(text)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


A = [{"sku": f"S-{i}", "name": f"Item {i}", "price": Decimal(i)} for i in range(6)]


def test_a_batch_records_created_skus_and_only_the_changed_fields_of_updated_items(
    importer_env: Path,
) -> None:
    first = run_import([A[:3], A[3:]])
    assert images(first) == [(["S-0", "S-1", "S-2"], []), (["S-3", "S-4", "S-5"], [])]
    changed = [{**A[0], "price": Decimal("9.5")}, {**A[1], "name": "Renamed"}, A[2], A[3]]
    second = run_import([[*changed, {"sku": "N-1", "name": "New", "price": None}]])
    [(created, updates)] = images(second)
    assert created == ["N-1"]
    by_sku = {sku: fields for sku, fields, _ in updates}
    # Each updated item also keeps the time it had: the first import's.
    with session_scope(write=False) as session:
        [first_image] = session.scalars(
            select(ItemUndo).where(ItemUndo.job_id == first, ItemUndo.batch_no == 1)
        ).all()
    assert {sku: _stamp(was) for sku, _, was in updates} == dict.fromkeys(
        ("S-0", "S-1"), first_image.written_at
    )
    assert set(by_sku) == {"S-0", "S-1"}  # unchanged rows record nothing
    assert list(by_sku["S-0"]) == ["price"] and list(by_sku["S-1"]) == ["name"]
    assert Decimal(str(by_sku["S-0"]["price"][0])) == 0
    assert Decimal(str(by_sku["S-0"]["price"][1])) == Decimal("9.5")
    assert by_sku["S-1"]["name"] == ["Item 1", "Renamed"]


def test_a_dry_run_and_a_batch_that_changes_nothing_record_nothing(importer_env: Path) -> None:
    run_import([A])
    dry = run_import([[{**A[0], "price": Decimal(7)}]], dry_run=True)
    same = run_import([A])
    assert images(dry) == [] and images(same) == []


def test_an_import_of_skus_alone_records_nothing_and_its_undo_changes_nothing(
    importer_env: Path,
) -> None:
    first = run_import([A])
    before = catalogue()
    skus = [{"sku": a["sku"]} for a in A[:4]]
    checked = run_import([skus[:2], [*skus[2:], {"sku": "N-1"}]], columns=("sku",))
    assert images(checked) == []
    undo = run_undo(checked)
    assert undo.status is JobStatus.COMPLETED
    assert (undo.deleted, undo.updated, undo.failed, undo.processed_rows) == (0, 0, 0, 0)
    assert catalogue() == before
    with session_scope(write=False) as session:
        job = get_job(session, checked)
        assert job is not None and job.status is JobStatus.UNDONE
    # The check wrote nothing, not even `updated_at`: the first import's undo finds every
    # item as that import left it.
    undo = run_undo(first)
    assert (undo.deleted, undo.failed) == (6, 0) and catalogue() == {}


def test_a_first_batch_rolled_back_records_its_before_image_when_run_again(
    importer_env: Path,
) -> None:
    """A database hiccup rolls back a batch, which is run again on the same connection:
    what the batch set up on that connection to record its before-image went with it."""
    run_import([A])
    reset_engines()  # a new connection, as a new process has
    job_id, attempt = start_import()
    batch = rows([{**A[1], "price": Decimal(7)}])

    class Hiccup(Exception):
        pass

    with pytest.raises(Hiccup), session_scope() as session:
        apply_batch(session, job_id, attempt=attempt, batch_no=1, rows=batch)
        raise Hiccup
    assert images(job_id) == []
    with session_scope() as session:
        apply_batch(session, job_id, attempt=attempt, batch_no=1, rows=batch)
    [(created, [(sku, fields, _)])] = images(job_id)
    assert created == [] and sku == "S-1" and list(fields) == ["price"]
    assert [Decimal(str(v)) for v in fields["price"]] == [1, 7]


def test_undo_restores_and_deletes_and_leaves_items_changed_since_unless_forced(
    importer_env: Path,
) -> None:
    run_import([A])
    before = catalogue()
    changed = [{**a, "price": Decimal(100) + a["price"]} for a in A]
    new = [{"sku": f"N-{i}", "name": f"New {i}", "price": None} for i in range(3)]
    second = run_import([changed[:3] + new[:2], changed[3:] + new[2:]])
    with session_scope() as session:
        # The application changes S-0's price without touching updated_at, and S-1's name
        # through the ORM; a later import changes N-0.
        session.execute(text("UPDATE item SET price = 55 WHERE sku = 'S-0'"))
        item = session.scalars(select(Item).where(Item.sku == "S-1")).one()
        item.name = "Edited"
    run_import([[{"sku": "N-0", "name": "New 0 again", "price": None}]])
    undo = run_undo(second)
    assert (undo.deleted, undo.updated, undo.failed, undo.processed_rows) == (2, 4, 3, 9)
    with session_scope(write=False) as session:
        errors = list_row_errors(session, undo.id)
    assert sorted(e["value"] for e in errors) == ["N-0", "S-0", "S-1"]
    assert {e["message"].split("' ")[1] for e in errors} == {"changed since the import"}
    now = catalogue()
    assert now["S-0"][1] == Decimal(55) and now["S-1"][0] == "Edited" and "N-0" in now
    assert {k: v for k, v in now.items() if k not in {"S-0", "S-1", "N-0"}} == {
        k: v for k, v in before.items() if k not in {"S-0", "S-1"}
    }


def test_a_forced_undo_overwrites_changes_made_since_but_not_deleted_items(
    importer_env: Path,
) -> None:
    run_import([A])
    before = catalogue()
    second = run_import([[{**a, "price": Decimal(1) + a["price"]} for a in A]])
    with session_scope() as session:
        session.execute(text("UPDATE item SET price = 55 WHERE sku = 'S-0'"))
        session.execute(text("DELETE FROM item WHERE sku = 'S-5'"))
    undo = run_undo(second, force=True)
    assert (undo.updated, undo.failed) == (5, 1)
    with session_scope(write=False) as session:
        [error] = list_row_errors(session, undo.id)
    assert error["message"] == "item 'S-5' no longer exists"
    assert catalogue() == {k: v for k, v in before.items() if k != "S-5"}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"status": JobStatus.FAILED}, None),
        ({"status": JobStatus.PROCESSING}, "still running"),
        ({"status": JobStatus.PENDING}, "still running"),
        ({"status": JobStatus.AWAITING_REVIEW}, "reject it instead"),
        ({"status": JobStatus.UNDONE}, "already been undone"),
        ({"dry_run": True}, "dry run"),
        ({"source": JobSource.UNDO}, "itself an undo"),
        ({"finished_at": NOW - timedelta(days=30, seconds=1)}, "IMPORTER_UNDO_DAYS"),
        ({"finished_at": NOW - timedelta(days=29)}, None),
        ({"undo_removed_at": NOW}, "IMPORTER_UNDO_DAYS"),
        ({"last_undo": (uuid.UUID(int=1), JobStatus.PENDING)}, "already under way"),
        ({"last_undo": (uuid.UUID(int=1), JobStatus.CANCELLED)}, "retry that job"),
    ],
)
def test_which_imports_may_be_undone(changes: dict[str, Any], reason: str | None) -> None:
    facts: dict[str, Any] = {
        "source": JobSource.UPLOAD,
        "status": JobStatus.COMPLETED,
        "dry_run": False,
        "finished_at": NOW,
        "undo_removed_at": None,
        "last_undo": None,
    }
    said = refusal(UndoFacts(**(facts | changes)), now=NOW, undo_days=30)
    assert said is None if reason is None else reason in (said or "")


def test_before_images_past_undo_retention_are_removed_and_the_undo_refused(
    importer_env: Path,
) -> None:
    old, recent = run_import([A[:3]]), run_import([A[3:]])
    with session_scope() as session:
        job = get_job(session, old)
        assert job is not None
        job.finished_at = utcnow() - timedelta(days=31)
    dry = clean_up(get_settings(), dry_run=True)
    assert (dry.undo.imports, dry.undo.batches) == (1, 1) and dry.undo.bytes > 0
    assert images(old) != []
    report = clean_up(get_settings())
    assert (report.undo.imports, report.undo.batches) == (1, 1)
    assert report.as_dict()["undo_imports"] == 1
    assert images(old) == [] and images(recent) != []
    with session_scope() as session, pytest.raises(UndoRefused, match="IMPORTER_UNDO_DAYS"):
        create_undo_job(session, old, force=False, undo_days=30)
    assert run_undo(recent).deleted == 3


def test_what_undos_restored_is_recorded_and_let_go_after_undo_retention(
    importer_env: Path,
) -> None:
    run_import([A])
    later = run_import([[{**a, "price": Decimal(50)} for a in A[:4]]])
    assert run_undo(later).updated == 4
    with session_scope(write=False) as session:
        restored = session.scalars(select(ItemRestored)).all()
        assert sorted(r.sku for r in restored) == ["S-0", "S-1", "S-2", "S-3"]
        items = {i.sku: i.updated_at for i in session.scalars(select(Item)).all()}
    assert all(r.restored_at == items[r.sku] for r in restored)
    clean_up(get_settings(), now=utcnow() + timedelta(days=29))
    with session_scope(write=False) as session:
        assert len(session.scalars(select(ItemRestored)).all()) == 4
    clean_up(get_settings(), now=utcnow() + timedelta(days=31))
    with session_scope(write=False) as session:
        assert session.scalars(select(ItemRestored)).all() == []


def test_an_import_whose_undo_is_under_way_keeps_its_before_images(importer_env: Path) -> None:
    old = run_import([A])
    with session_scope() as session:
        create_undo_job(session, old, force=False, undo_days=30)
        job = get_job(session, old)
        assert job is not None
        job.finished_at = utcnow() - timedelta(days=31)
    assert clean_up(get_settings()).undo.imports == 0
    assert images(old) != []
