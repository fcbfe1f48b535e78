"""The writing pass sends the database no row equal to its stored item when it has a copy
of the stored items read during the parse, and counts those rows unchanged; a copy another
import may have made stale is not used. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from db.models import ImportMode, Item, JobStatus
from db.session import session_scope
from itemsheet.jobs import importing
from itemsheet.jobs.importing import begin_attempt
from itemsheet.jobs.views import JobView
from itemsheet.runs import running
from tests.itemsheet.attempts import Files, fake_parse_child, quiet, read_ahead_job, run

STORED = [(f"S-{k}", f"Item {k}", Decimal("10.5"), k) for k in range(1, 10)]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def files(importer_env: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    return fake_parse_child(monkeypatch)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows each batch sends the database, as it sends them."""
    heights: list[int] = []
    merge = importing.merge_items

    def counted(session: Any, frame: pl.DataFrame, **options: Any) -> Any:
        if not options.get("dry_run"):
            heights.append(frame.height)
        return merge(session, frame, **options)

    monkeypatch.setattr(importing, "merge_items", counted)
    return heights


def store() -> None:
    with session_scope() as session:
        session.add_all(
            Item(sku=s, name=n, price=p, quantity=q, description=None) for s, n, p, q in STORED
        )


def sheet(rows: list[tuple[str, str | None, str | None, int | None]]) -> pl.DataFrame:
    """Validated rows (SKU, name, price, quantity) from sheet row 2 on."""
    return pl.DataFrame(
        {
            "row": list(range(2, 2 + len(rows))),
            "sku": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "price": pl.Series([r[2] for r in rows], dtype=pl.String).cast(pl.Decimal(18, 4)),
            "quantity": pl.Series([r[3] for r in rows], dtype=pl.Int64),
        }
    ).with_columns(
        pl.lit(None, pl.String).alias(c) for c in ("error_column", "error_value", "error_message")
    )


def completed(job_id: uuid.UUID) -> JobView:
    view = run(job_id)
    assert view.status is JobStatus.COMPLETED, view.error
    return view


def items() -> dict[str, tuple[str, str | None, int | None]]:
    with session_scope(write=False) as session:
        return {i.sku: (i.name, _price(i.price), i.quantity) for i in session.query(Item)}


def _price(price: Any) -> str | None:
    return None if price is None else format(Decimal(str(price)).normalize(), "f")


# Rows equal to S-1 .. S-5; S-6 a ten-thousandth dearer; S-7 emptied of its quantity;
# S-8 renamed; S-9 with no name (kept as stored) and nothing else changed; two new SKUs.
SHEET = [
    *((s, n, "10.50", q) for s, n, _, q in STORED[:5]),
    ("S-6", "Item 6", "10.5001", 6),
    ("S-7", "Item 7", "10.5", None),
    ("S-8", "Item 8b", "10.5", 8),
    ("S-9", None, "10.5", 9),
    ("N-1", "New 1", "1", 1),
    ("N-2", "New 2", None, None),
]


@pytest.mark.parametrize("mode", [ImportMode.UPSERT, ImportMode.UPDATE_ONLY])
def test_rows_equal_to_their_item_are_not_sent_and_are_counted_unchanged(
    files: Files,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sent: list[int],
    mode: ImportMode,
) -> None:
    store()
    done = completed(read_ahead_job(files, sheet(SHEET), tmp_path, monkeypatch, mode=mode.value))

    new = 2 if mode is ImportMode.UPSERT else 0
    assert (done.created, done.updated, done.unchanged) == (new, 3, 6)
    assert done.skipped == 2 - new
    # Of 11 rows, the five equal ones are not sent.
    assert sum(sent) == 11 - 5
    after = items()
    assert after["S-6"] == ("Item 6", "10.5001", 6)
    assert after["S-7"] == ("Item 7", "10.5", None)
    assert after["S-8"] == ("Item 8b", "10.5", 8)
    assert after["S-9"] == ("Item 9", "10.5", 9)
    assert ("N-1" in after) == (mode is ImportMode.UPSERT)


def test_a_copy_another_import_may_have_made_stale_is_not_used(
    files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sent: list[int]
) -> None:
    store()
    # The sheet sends every item back as stored.
    rows = sheet([(s, n, str(p), q) for s, n, p, q in STORED])
    job_id = read_ahead_job(files, rows, tmp_path, monkeypatch)
    with session_scope() as session:
        number = begin_attempt(session, job_id, flow_run_id=None)
    assert number is not None
    batches = running.load(job_id, number)  # the stored items are read from here on
    assert batches is not None
    # Meanwhile another import changes S-1 (and ends before the first one writes).
    other = completed(
        read_ahead_job(files, sheet([("S-1", "Item 1", "99", 1)]), tmp_path, monkeypatch)
    )
    assert other.updated == 1
    sent.clear()

    while running.is_previewing(job_id):  # the guardrails' pass
        assert running.write(job_id, number, batches, quiet)
        assert not running.close_preview(job_id)
    assert running.write(job_id, number, batches, quiet)
    done = running.finish(job_id, JobStatus.COMPLETED)

    # Written as the sheet says: the copy that still held S-1 at 10.5 was not used.
    assert items()["S-1"] == ("Item 1", "10.5", 1)
    assert (done.updated, done.unchanged) == (1, 8)
    assert sum(sent) == len(STORED)
