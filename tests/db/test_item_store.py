"""The batch merge on SQLite and a real PostgreSQL: counts from the database, exact writes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.item_store import MergeCounts, merge_items, nameless_new_skus
from db.models import Item
from db.session import session_scope

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(importer_env: Path) -> None:
    return None


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema: dict[str, Any] = {
        "sku": pl.String,
        "name": pl.String,
        "description": pl.String,
        "category": pl.String,
        "unit": pl.String,
        "price": pl.Decimal(18, 4),
        "quantity": pl.Int64,
        "barcode": pl.String,
    }
    columns = list(rows[0])
    return pl.DataFrame(rows, schema={c: schema[c] for c in columns}, orient="row")


def merge(
    rows: list[dict[str, Any]], *, now: datetime = T0, dry_run: bool = False
) -> tuple[int, int, int]:
    with session_scope() as session:
        counts = merge_items(session, frame(rows), now=now, dry_run=dry_run)
    return counts.created, counts.updated, counts.unchanged


def items() -> dict[str, dict[str, Any]]:
    with session_scope(write=False) as session:
        found = session.scalars(select(Item).order_by(Item.sku)).all()
        return {
            i.sku: {
                "name": i.name,
                "description": i.description,
                "price": None if i.price is None else Decimal(i.price).quantize(Decimal("0.0001")),
                "quantity": i.quantity,
                "updated_at": i.updated_at,
                "created_at": i.created_at,
            }
            for i in found
        }


BASE = [
    {"sku": "A", "name": "Alpha", "description": None, "price": Decimal("1.5"), "quantity": 3},
    {"sku": "B", "name": "Beta", "description": "b", "price": None, "quantity": None},
    {"sku": "C", "name": "Gamma", "description": "c", "price": Decimal("2"), "quantity": 0},
]


def test_new_changed_and_unchanged_rows_are_counted_by_the_database(db: None) -> None:
    assert merge(BASE) == (3, 0, 0)
    second = [
        {**BASE[0]},  # unchanged, nulls included
        {**BASE[1], "price": Decimal("0.0001")},  # null -> value
        {**BASE[2], "description": None},  # value -> null
        {"sku": "D", "name": "Delta", "description": None, "price": None, "quantity": 1},
    ]
    assert merge(second, now=T1) == (1, 2, 1)
    stored = items()
    assert stored["A"]["updated_at"] == T0  # an unchanged row is not written
    assert stored["B"]["price"] == Decimal("0.0001") and stored["B"]["updated_at"] == T1
    assert stored["C"]["description"] is None and stored["C"]["created_at"] == T0
    assert stored["D"]["created_at"] == T1
    # The same batch again changes nothing.
    assert merge(second, now=T1) == (0, 0, 4)


def test_a_price_with_more_zeros_is_the_same_price(db: None) -> None:
    merge([{"sku": "A", "name": "Alpha", "price": Decimal("12.5")}])
    assert merge([{"sku": "A", "name": "Alpha", "price": Decimal("12.5000")}]) == (0, 0, 1)
    assert merge([{"sku": "A", "name": "Alpha", "price": Decimal("12.5001")}]) == (0, 1, 0)


def test_only_the_columns_in_the_batch_are_compared_and_written(db: None) -> None:
    merge(BASE)
    # No description or price column: stored values stay, and only the name is compared.
    assert merge([{"sku": "A", "name": "Alpha"}, {"sku": "B", "name": "Beta 2"}], now=T1) == (
        0,
        1,
        1,
    )
    stored = items()
    assert stored["B"] == {**stored["B"], "name": "Beta 2", "description": "b", "quantity": None}
    assert stored["A"]["price"] == Decimal("1.5000")


def test_a_dry_run_counts_the_same_and_writes_nothing(db: None) -> None:
    merge(BASE)
    before = items()
    batch = [
        {**BASE[0], "name": "Alpha 2"},
        BASE[1],
        {"sku": "Z", "name": "Zed", "description": None, "price": None, "quantity": None},
    ]
    assert merge(batch, now=T1, dry_run=True) == (1, 1, 1)
    assert items() == before
    assert merge(batch, now=T1) == (1, 1, 1)


def test_text_that_csv_must_quote_arrives_intact(db: None) -> None:
    odd = 'quote " comma , semicolon ; tab \t newline \n backslash \\ NULL \\N ünïcødé 😀'
    merge([{"sku": "Q", "name": odd, "description": ""}])
    stored = items()["Q"]
    assert stored["name"] == odd
    assert stored["description"] == ""  # empty text is not turned into NULL by COPY


def test_rows_of_a_big_batch_all_arrive(db: None) -> None:
    n = 12_000  # past SQLite's bound-parameter limit if rows were sent as one statement
    rows = [{"sku": f"S{i:05d}", "name": f"n{i}", "quantity": i} for i in range(n)]
    assert merge(rows) == (n, 0, 0)
    changed = [
        {**r, "quantity": r["quantity"] + (1 if i % 3 == 0 else 0)} for i, r in enumerate(rows)
    ]
    assert merge(changed) == (0, n // 3, n - n // 3)
    stored = items()
    assert (
        len(stored) == n and stored["S00003"]["quantity"] == 4 and stored["S00004"]["quantity"] == 4
    )


def merge_counts(
    rows: list[dict[str, Any]], *, now: datetime = T1, dry_run: bool = False
) -> MergeCounts:
    with session_scope() as session:
        return merge_items(session, frame(rows), now=now, dry_run=dry_run)


def test_a_batch_without_names_updates_existing_items_and_refuses_new_skus(db: None) -> None:
    merge(BASE)
    before = items()
    counts = merge_counts(
        [
            {"sku": "A", "price": Decimal("9")},  # changed
            {"sku": "N", "price": Decimal("1")},  # new, no name
            {"sku": "B", "price": None},  # same as stored
            {"sku": "M", "price": None},  # new, no name
        ]
    )
    assert counts == MergeCounts(0, 1, 1, frozenset({"N", "M"}))
    stored = items()
    assert set(stored) == {"A", "B", "C"}
    assert stored["A"] == {**before["A"], "price": Decimal("9.0000"), "updated_at": T1}
    assert stored["B"] == before["B"] and stored["C"] == before["C"]


def test_an_empty_name_keeps_the_stored_name_and_cannot_create(db: None) -> None:
    merge(BASE)
    before = items()
    counts = merge_counts(
        [
            {"sku": "A", "name": None, "description": None},  # unchanged: name kept
            {"sku": "B", "name": None, "description": "b2"},  # updated, name kept
            {"sku": "C", "name": "Gamma 2", "description": "c"},  # renamed
            {"sku": "N", "name": None, "description": "n"},  # new without a name
            {"sku": "O", "name": "Omega", "description": None},  # new with one
        ]
    )
    assert counts == MergeCounts(1, 2, 1, frozenset({"N"}))
    stored = items()
    assert stored["A"] == before["A"]
    assert stored["B"]["name"] == "Beta" and stored["B"]["description"] == "b2"
    assert stored["C"]["name"] == "Gamma 2"
    assert "N" not in stored and stored["O"]["name"] == "Omega"


@pytest.mark.parametrize("with_name_column", [True, False])
def test_a_dry_run_refuses_the_same_nameless_skus_and_writes_nothing(
    with_name_column: bool, db: None
) -> None:
    merge(BASE)
    before = items()
    rows: list[dict[str, Any]] = [
        {"sku": "A", "quantity": 4},
        {"sku": "B", "quantity": None},
        {"sku": "N", "quantity": 1},
    ]
    if with_name_column:
        rows = [{"sku": r["sku"], "name": None, "quantity": r["quantity"]} for r in rows]
    expected = MergeCounts(0, 1, 1, frozenset({"N"}))
    assert merge_counts(rows, dry_run=True) == expected
    assert items() == before
    assert merge_counts(rows) == expected


def test_a_batch_rolled_back_is_judged_the_same_when_run_again(db: None) -> None:
    """A batch commits with its progress, so a resumed batch never meets its own items."""
    rows: list[dict[str, Any]] = [{"sku": "A", "name": "Alpha"}, {"sku": "N", "name": None}]

    class Crash(Exception):
        pass

    with pytest.raises(Crash), session_scope() as session:
        assert merge_items(session, frame(rows), now=T0).nameless == {"N"}
        raise Crash
    assert items() == {}
    assert merge_counts(rows) == MergeCounts(1, 0, 0, frozenset({"N"}))
    # The item the batch created exists now: the same rows again update nothing.
    assert merge_counts(rows) == MergeCounts(0, 0, 1, frozenset({"N"}))


def test_nameless_new_skus_are_the_ones_not_stored(db: None) -> None:
    merge(BASE)
    skus = pl.Series(["A", "X", "C", "Y"])
    with session_scope() as session:
        assert nameless_new_skus(session, skus) == {"X", "Y"}
        assert nameless_new_skus(session, pl.Series([], dtype=pl.String)) == frozenset()
        # The staging table is left for the batch merge that may follow in the transaction.
        assert _merge_after_check(session) == MergeCounts(0, 1, 0)


def _merge_after_check(session: Session) -> MergeCounts:
    return merge_items(session, frame([{"sku": "A", "name": "Alpha 2"}]), now=T1)


def test_a_dry_run_describes_the_changes_it_counts_field_by_field(db: None) -> None:
    merge(BASE)
    batch = [
        {**BASE[0], "name": "Alpha 2", "price": Decimal("1.50")},  # name changes, price same
        {**BASE[1], "price": Decimal("0.25")},  # null -> value
        {**BASE[2]},  # unchanged: not described
        {"sku": "D", "name": "Delta", "description": None, "price": Decimal("7"), "quantity": 0},
    ]
    with session_scope() as session:
        counts = merge_items(session, frame(batch), now=T1, dry_run=True, changes=10)
    assert (counts.created, counts.updated, counts.unchanged) == (1, 2, 1)
    assert list(counts.changes) == [
        {"sku": "A", "action": "update", "fields": {"name": ["Alpha", "Alpha 2"]}},
        {"sku": "B", "action": "update", "fields": {"price": [None, "0.25"]}},
        # A new item shows the values it would get (empty ones are left out).
        {
            "sku": "D",
            "action": "create",
            "fields": {"name": [None, "Delta"], "price": [None, "7"], "quantity": [None, 0]},
        },
    ]
    with session_scope() as session:
        limited = merge_items(session, frame(batch), now=T1, dry_run=True, changes=1)
    assert [c["sku"] for c in limited.changes] == ["A"]
    assert items()["A"]["name"] == "Alpha"  # still nothing written


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_batch_of_skus_alone_compares_no_field_and_writes_nothing(
    dry_run: bool, db: None
) -> None:
    """A sheet with only a SKU column asks which items exist: the stored ones are
    unchanged (their `updated_at` stays), the new ones cannot be created without a name."""
    merge(BASE)
    before = items()
    with session_scope() as session:
        counts = merge_items(
            session,
            frame([{"sku": "A"}, {"sku": "N"}, {"sku": "C"}]),
            now=T1,
            dry_run=dry_run,
            changes=10,
        )
    assert counts == MergeCounts(0, 0, 2, frozenset({"N"}))
    assert items() == before


def test_measuring_in_chunks_of_bound_values_counts_as_the_staged_rows_do(
    db: None, database: str
) -> None:
    """SQLite measures a guarded sheet from VALUES lists as long as its bound parameters
    allow, PostgreSQL from the staging table: the same counts, chunk by chunk."""
    from sqlalchemy import event

    from db.item_store import measure_items
    from db.session import get_engine
    from itemsheet.jobs.guard import limits
    from settings import get_settings

    merge(
        [{"sku": f"M{k:02d}", "name": "M", "price": Decimal(10), "quantity": 4} for k in range(20)]
    )
    sheet = frame(
        [
            {"sku": f"M{k:02d}", "price": Decimal(p), "quantity": q}
            for k, (p, q) in enumerate(
                [("10", 4), ("16", 0), ("1", 4), ("100", 9), ("10.5", 1)] * 4, start=0
            )
        ]
        + [{"sku": "NEW", "price": Decimal(5), "quantity": 0}]
    )
    lim = limits(get_settings())

    def measured() -> Any:
        with session_scope(write=False) as session:
            return measure_items(session, sheet, limits=lim)[1]

    whole = measured()
    if database == "sqlite":  # at most 3 rows (9 values) to a statement
        small = lambda conn, _record: conn.setlimit(  # noqa: E731
            __import__("sqlite3").SQLITE_LIMIT_VARIABLE_NUMBER, 9
        )
        event.listen(get_engine(write=False), "connect", small)
        get_engine(write=False).dispose()
        try:
            chunked = measured()
        finally:
            event.remove(get_engine(write=False), "connect", small)
            get_engine(write=False).dispose()
        assert chunked == whole
    assert whole.touched == 20  # the new SKU is no stored item
    assert sum(whole.prices) == 16  # four rows of each changed price
    assert sum(whole.quantities) == 12  # and of each changed quantity (three of five)
    assert whole.quantities[0] == 4  # to 0 from positive


class Recorder:
    """A `WriteHook` that keeps what a write hands it: (new items, their SKUs)."""

    def __init__(self) -> None:
        self.written: tuple[int, list[str]] | None = None

    def before(self, conn: Any) -> None:
        return None

    def after(self, conn: Any, created: int, skus: str, changed: Any) -> None:
        import json

        self.written = (created, json.loads(skus))


def _second_batch() -> list[dict[str, Any]]:
    return [
        {**BASE[0]},  # unchanged
        {**BASE[1], "price": Decimal("7")},  # changed
        {**BASE[2], "name": "Gamma 2"},  # changed
        *({"sku": s, "name": s, "description": None, "price": None, "quantity": 1} for s in "FED"),
    ]


def _merge_recorded(rows: list[dict[str, Any]]) -> tuple[MergeCounts, Recorder]:
    recorder = Recorder()
    with session_scope() as session:
        counts = merge_items(session, frame(rows), now=T1, hook=recorder)
    return counts, recorder


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_write_in_chunks_of_bound_values_stores_and_counts_as_one_statement_does(
    db: None,
) -> None:
    """SQLite writes a batch whose rows all carry a name from VALUES lists, as many rows to a
    statement as its bound parameters allow: cut into statements of two rows, a batch
    counts, stores and reports its new SKUs as it does in one."""
    import sqlite3

    from sqlalchemy import event

    from db.session import get_engine

    merge(BASE)
    small = lambda conn, _record: conn.setlimit(  # noqa: E731
        sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 2 + 2 * len(BASE[0])
    )
    event.listen(get_engine(), "connect", small)
    get_engine().dispose()
    try:
        counts, recorder = _merge_recorded(_second_batch())
    finally:
        event.remove(get_engine(), "connect", small)
        get_engine().dispose()
    assert counts == MergeCounts(3, 2, 1)
    assert recorder.written is not None and recorder.written == (3, ["D", "E", "F"])
    stored = items()
    assert sorted(stored) == ["A", "B", "C", "D", "E", "F"]
    assert stored["B"]["price"] == Decimal("7.0000") and stored["C"]["name"] == "Gamma 2"
    assert stored["A"]["updated_at"] == T0 and stored["F"]["created_at"] == T1


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_big_batch_is_written_in_short_values_lists(db: None) -> None:
    """SQLite would bind a 2,500-row batch in one statement; it is cut into VALUES lists
    of at most `VALUES_MOST_ROWS` rows (a long one costs more than its rows), and counts
    and stores as one statement would."""
    from sqlalchemy import event

    from db.item_store import VALUES_MOST_ROWS

    merge([{"sku": f"K{k:05d}", "name": "old", "quantity": k} for k in range(0, 2_500, 2)])
    lists: list[int] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO item "):
            lists.append(statement.count("(?"))

    with session_scope() as session:
        engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        counts, recorder = _merge_recorded(
            [{"sku": f"K{k:05d}", "name": "new", "quantity": k} for k in range(2_500)]
        )
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert counts == MergeCounts(1_250, 1_250, 0)
    assert recorder.written is not None and len(recorder.written[1]) == 1_250
    assert sum(lists) == 2_500 and len(lists) > 1 and max(lists) <= VALUES_MOST_ROWS
    stored = items()
    assert len(stored) == 2_500 and {i["name"] for i in stored.values()} == {"new"}
    assert stored["K02499"]["quantity"] == 2_499


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_new_items_are_found_when_an_item_holds_the_largest_rowid(db: None) -> None:
    """SQLite gives new rows random rowids once one row holds the largest possible: the new
    items of a batch cannot be told by their rowids then, and are counted before the write."""
    from sqlalchemy import text

    merge(BASE)
    with session_scope() as session:
        session.execute(
            text(
                "INSERT INTO item (id, sku, name, created_at, updated_at)"
                " VALUES (:id, 'TOP', 'Top', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            ),
            {"id": 2**63 - 1},
        )
    counts, recorder = _merge_recorded(_second_batch())
    assert counts == MergeCounts(3, 2, 1)
    assert recorder.written is not None and sorted(recorder.written[1]) == ["D", "E", "F"]
    assert sorted(items()) == ["A", "B", "C", "D", "E", "F", "TOP"]


def test_rows_prepared_for_another_batch_are_refused(db: None, database: str) -> None:
    """A write made ready ahead (`prepare`) must be of the batch it is given with: rows of
    another height or other columns fail the batch instead of writing them."""
    from db.item_store import prepare

    batch = frame(BASE)
    other = prepare(frame(BASE[:2]), database)
    with pytest.raises(ValueError, match="not the batch's"), session_scope() as session:
        merge_items(session, batch, now=T0, prepared=other)
    fewer = prepare(batch.drop("quantity"), database)
    with pytest.raises(ValueError, match="not the batch's"), session_scope() as session:
        merge_items(session, batch, now=T0, prepared=fewer)
    assert items() == {}
    with session_scope() as session:
        counts = merge_items(session, batch, now=T0, prepared=prepare(batch, database))
    assert (counts.created, counts.updated, counts.unchanged) == (3, 0, 0)
    assert items()["A"]["price"] == Decimal("1.5000") and items()["B"]["name"] == "Beta"
