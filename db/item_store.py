"""Bulk item merges and transaction locks: the dialect SQL of writing items (the undo's is
beside it in `db.undo_store`).

A batch is merged in these steps inside the caller's transaction:
1. its valid rows go into a temporary staging table (PostgreSQL: one COPY of CSV text
   that polars writes; SQLite: one `executemany`);
2. in a mode other than upsert: one statement drops the staged rows the mode leaves alone
   (stored SKUs in create_only, new ones in update_only), returning their SKUs;
3. only when some staged row has no name: one statement drops the new SKUs among them
   (an item cannot be created without a name; the caller reports them as row errors) and
   one fills the rest with the stored names (an empty name never clears one, and the
   insert always carries a name);
4. one statement counts what the batch would create and change, compared in the
   database, nulls included (dry runs stop here);
5. one `INSERT ... SELECT ... ON CONFLICT (sku) DO UPDATE ... WHERE <a field differs>`
   writes new and changed items in SKU order and leaves unchanged rows alone.
A measuring dry run (a review's preview, and `measure_items`, the guardrails' own pass over
the fields their rules read) also sorts the stored items the batch names by how far their
price and quantity would move, in one grouped statement, and describes the largest moves.
On SQLite, a batch written in upsert mode whose rows all carry a name needs none of steps
1-4: its rows go into the upsert itself as VALUES lists, and its new items are the ones
above the table's largest rowid as it was before (`_upsert_values`).
Counts come from the database, never from a guess in Python. A `WriteHook` (the undo's
before-image, `db.undo_store`) sees step 5 from inside the same transaction: on
PostgreSQL the upsert then returns its rows with their old values.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from itertools import chain, zip_longest
from typing import Any, Protocol

import polars as pl
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from db.enums import ImportMode

STAGE = "item_stage"
# Column types of the staging table; the same affinities as the item table, so a value
# compares equal to itself once stored.
_STAGE_TYPES = {
    "sku": "VARCHAR(64)",
    "name": "VARCHAR(255)",
    "description": "TEXT",
    "category": "VARCHAR(100)",
    "unit": "VARCHAR(20)",
    "price": "NUMERIC(18, 4)",
    "quantity": "BIGINT",
    "barcode": "VARCHAR(32)",
}


@dataclass(frozen=True)
class Limits:
    """Where a measuring dry run cuts price changes: a change of more than `change` (a
    fraction, either way) is large, one by `factor` or more (either way) is extreme."""

    change: float
    factor: float
    # How many of the largest changes to describe.
    largest: int = 50


# The ratios new / stored price that bound the buckets of `Measured.prices`, beside the
# limits' own: +-20 %, and 1 (unchanged prices are not counted).
_MIDDLE_RATIOS = (0.8, 1.0, 1.2)
# Buckets of `Measured.quantities`: to 0 (from a positive stock), down by more than 50 %,
# down by up to 50 %, up by up to 50 %, up by more than 50 %, from 0 or less.
QUANTITY_BUCKETS = 6


def price_ratios(limits: Limits) -> list[float]:
    """The ratios new / stored price between the buckets of `Measured.prices`, ascending.

    Below 1 a ratio belongs to the bucket above it (a drop by exactly the large change
    is not large), except 1/factor, which belongs below (a drop to a tenth is extreme);
    above 1 a ratio belongs to the bucket below it, except factor, which belongs above.
    """
    edges = {1 / limits.factor, 1 - limits.change, 1 + limits.change, limits.factor}
    return sorted(edges.union(_MIDDLE_RATIOS))


@dataclass(frozen=True)
class Measured:
    """How far a batch would move the stored items it names (a measuring dry run).

    `touched`: stored items the batch names (after the mode's skips); `prices`: items per
    bucket of price change (stored price positive, new price given and different;
    buckets between `price_ratios`); `quantities`: items per bucket of quantity change
    (`QUANTITY_BUCKETS`). `large`: up to `Limits.largest` rows whose price would change by
    more than the large change, largest first; `zeroed`: up to as many rows whose positive
    quantity would become 0, largest stock first (described as `MergeCounts.changes`).
    """

    touched: int
    prices: tuple[int, ...]
    quantities: tuple[int, ...]
    large: tuple[dict[str, Any], ...] = ()
    zeroed: tuple[dict[str, Any], ...] = ()

    def plus(self, other: Measured) -> Measured:
        """The counts of both (their examples: both lists, this one's first)."""

        def added(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(x + y for x, y in zip_longest(a, b, fillvalue=0))

        return Measured(
            self.touched + other.touched,
            added(self.prices, other.prices),
            added(self.quantities, other.quantities),
            (*self.large, *other.large),
            (*self.zeroed, *other.zeroed),
        )


@dataclass(frozen=True)
class MergeCounts:
    """What a batch did (or, in a dry run, would do) to the item table."""

    created: int
    updated: int
    unchanged: int
    # New SKUs without a name: not written and not counted above.
    nameless: frozenset[str] = frozenset()
    # SKUs the mode left alone: not written and not counted above.
    skipped: frozenset[str] = frozenset()
    # A dry run asked for changes: up to that many rows that would change, each
    # {sku, action: "create" | "update", fields: {field: [stored, new]}} (changed fields).
    changes: tuple[dict[str, Any], ...] = ()
    # A dry run asked to measure: how far prices and quantities would move (`Measured`).
    measured: Measured | None = None


def _connection(session: Session) -> Connection:
    return session.connection()


def _is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def _timestamp(conn: Connection, now: datetime) -> Any:
    now = now.astimezone(UTC)
    # Match how SQLAlchemy's DateTime stores values on SQLite (naive UTC text).
    return now.replace(tzinfo=None).isoformat(sep=" ") if _is_sqlite(conn) else now


def _stage(conn: Connection, frame: pl.DataFrame, *, csv: bytes | None = None) -> None:
    """Empty the staging table (creating it on a new connection) and load `frame` into it
    (PostgreSQL: from `csv`, its COPY text made ahead, when given)."""
    columns = ", ".join(f"{name} {kind}" for name, kind in _STAGE_TYPES.items())
    names = ", ".join(frame.columns)
    if _is_sqlite(conn):
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({columns})")
        conn.exec_driver_sql(f"DELETE FROM {STAGE}")
        if "price" in frame.columns:
            # The sqlite3 driver binds no Decimal; NUMERIC affinity stores a float either way.
            frame = frame.with_columns(pl.col("price").cast(pl.Float64))
        marks = ", ".join("?" * frame.width)
        # Column lists zipped into rows: a third cheaper than DataFrame.rows().
        rows = list(zip(*(column.to_list() for column in frame.get_columns()), strict=True))
        conn.exec_driver_sql(f"INSERT INTO {STAGE} ({names}) VALUES ({marks})", rows)
        return
    # ON COMMIT DELETE ROWS empties it at the end of every transaction, committed or not.
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({columns}) ON COMMIT DELETE ROWS"
    )
    # Empty already, unless this transaction staged before (the name check of an abort).
    conn.exec_driver_sql(f"DELETE FROM {STAGE}")
    text = csv if csv is not None else frame.write_csv(include_header=False).encode("utf-8")
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {STAGE} ({names}) FROM STDIN (FORMAT csv)") as copy,
    ):
        copy.write(text)


def _drop_nameless_new(conn: Connection) -> frozenset[str]:
    """Remove the staged rows that would create an item without a name; their SKUs.

    "New" is judged against the items as this transaction sees them. A batch commits
    together with its progress, so a batch that is run again after a crash never sees
    the items it created itself; and a sheet holds each SKU once.
    """
    rows = conn.exec_driver_sql(
        f"DELETE FROM {STAGE} WHERE name IS NULL"
        f" AND NOT EXISTS (SELECT 1 FROM item i WHERE i.sku = {STAGE}.sku) RETURNING sku"
    ).all()
    return frozenset(str(row[0]) for row in rows)


def _skip_by_mode(conn: Connection, mode: ImportMode) -> frozenset[str]:
    """Remove the staged rows `mode` leaves alone; their SKUs. Stored or new is judged
    against the items as this transaction sees them, as `_drop_nameless_new` judges."""
    if mode is ImportMode.UPSERT:
        return frozenset()
    stored = "" if mode is ImportMode.CREATE_ONLY else "NOT "
    rows = conn.exec_driver_sql(
        f"DELETE FROM {STAGE} WHERE {stored}EXISTS"
        f" (SELECT 1 FROM item i WHERE i.sku = {STAGE}.sku) RETURNING sku"
    ).all()
    return frozenset(str(row[0]) for row in rows)


def _keep_stored_names(conn: Connection) -> None:
    """Give staged rows without a name their item's stored name, so it is neither cleared
    (the column is NOT NULL) nor counted as a change."""
    conn.exec_driver_sql(
        f"UPDATE {STAGE} SET name = (SELECT i.name FROM item i WHERE i.sku = {STAGE}.sku)"
        f" WHERE name IS NULL"
    )


def nameless_new_skus(session: Session, skus: pl.Series) -> frozenset[str]:
    """Which of `skus` (unique; rows that carry no name) are not stored items yet."""
    if skus.is_empty():
        return frozenset()
    conn = _connection(session)
    _stage(conn, skus.alias("sku").to_frame())
    return _drop_nameless_new(conn)


def _differs(conn: Connection, fields: list[str], stored: str, new: str) -> str:
    """SQL that is true when any of `fields` differs between two row aliases, nulls included.

    No fields (a sheet of SKUs alone) never differ: every stored item is unchanged, and
    the upsert's `DO UPDATE ... WHERE` writes none of them.
    """
    if not fields:
        return "false"
    if _is_sqlite(conn):
        return " OR ".join(f"{stored}.{f} IS NOT {new}.{f}" for f in fields)
    left = ", ".join(f"{stored}.{f}" for f in fields)
    right = ", ".join(f"{new}.{f}" for f in fields)
    return f"ROW({left}) IS DISTINCT FROM ROW({right})"


def _count(conn: Connection, fields: list[str]) -> tuple[int, int]:
    """(new, changed) rows of the staging table, compared with the stored items."""
    row = conn.exec_driver_sql(
        f"SELECT COALESCE(SUM(CASE WHEN i.sku IS NULL THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN i.sku IS NOT NULL AND ({_differs(conn, fields, 'i', 's')})"
        f" THEN 1 ELSE 0 END), 0)"
        f" FROM {STAGE} s LEFT JOIN item i ON i.sku = s.sku"
    ).one()
    return int(row[0]), int(row[1])


def _shown(field: str, value: Any) -> Any:
    """A stored or staged value as a preview shows it: prices as exact decimal text."""
    if field == "price" and value is not None:
        return format(Decimal(str(value)).quantize(Decimal("0.0001")).normalize(), "f")
    return value


def _changes(
    conn: Connection,
    fields: list[str],
    limit: int,
    *,
    among: str | None = None,
    order: str = "s.sku",
) -> tuple[dict[str, Any], ...]:
    """Up to `limit` staged rows that would create or change an item, field by field
    (with `among`, only stored items that match that condition, in `order`)."""
    stored, staged = [f"i.{f}" for f in fields], [f"s.{f}" for f in fields]
    columns = ", ".join(["s.sku", "i.sku IS NULL", *stored, *staged])
    which = f"i.sku IS NOT NULL AND ({among}) AND" if among else "i.sku IS NULL OR"
    rows = conn.exec_driver_sql(
        f"SELECT {columns}"
        f" FROM {STAGE} s LEFT JOIN item i ON i.sku = s.sku"
        f" WHERE {which} ({_differs(conn, fields, 'i', 's')})"
        f" ORDER BY {order} LIMIT {int(limit)}"
    ).all()
    found: list[dict[str, Any]] = []
    width = len(fields)
    for row in rows:
        new = bool(row[1])
        before, after = row[2 : 2 + width], row[2 + width :]
        changed = {
            f: [None if new else _shown(f, b), _shown(f, a)]
            for f, b, a in zip(fields, before, after, strict=True)
            if (a is not None if new else _shown(f, b) != _shown(f, a))
        }
        found.append({"sku": row[0], "action": "create" if new else "update", "fields": changed})
    return tuple(found)


def number_text(value: float) -> str:
    """A limit as an SQL literal (exact decimal text, which both databases read alike)."""
    return format(Decimal(repr(value)), "f")


class Cut(StrEnum):
    """How a changed price is held against one of `price_ratios` (`price_cuts`)."""

    # new * factor <= stored: a drop to 1/factor or further (the ratio is 1/factor).
    DROP_BY_FACTOR = "drop_by_factor"
    # new < stored * ratio
    BELOW = "below"
    # new <= stored * ratio
    AT_MOST = "at_most"


def price_cuts(limits: Limits) -> list[tuple[int, Cut, float]]:
    """The tests that put a changed price in its bucket, in the order they are tried:
    (bucket, how, by what the test multiplies: the factor for a drop by it, else the
    ratio); a price no test puts in a bucket is in the last one,
    `len(price_ratios(limits))`. The SQL of the measure and the guardrails' pass over
    stored items read ahead (`db.item_snapshot`) both follow this list."""
    cuts = []
    for index, ratio in enumerate(price_ratios(limits)):
        if ratio == 1 / limits.factor:
            cuts.append((index, Cut.DROP_BY_FACTOR, limits.factor))
        elif ratio == limits.factor or ratio <= 1:
            cuts.append((index, Cut.BELOW, ratio))
        else:
            cuts.append((index, Cut.AT_MOST, ratio))
    return cuts


def _price_bucket(limits: Limits) -> str:
    """SQL: the bucket of a changed price between `price_ratios`, from 0."""
    cases = []
    for index, how, ratio in price_cuts(limits):
        if how is Cut.DROP_BY_FACTOR:
            cases.append(f"WHEN s.price * {number_text(ratio)} <= i.price THEN {index}")
        elif how is Cut.BELOW:
            cases.append(f"WHEN s.price < i.price * {number_text(ratio)} THEN {index}")
        else:
            cases.append(f"WHEN s.price <= i.price * {number_text(ratio)} THEN {index}")
    last = len(price_ratios(limits))
    return (
        "CASE WHEN s.price IS NULL OR i.price IS NULL OR i.price <= 0 OR s.price = i.price"
        f" THEN NULL {' '.join(cases)} ELSE {last} END"
    )


# The products are of decimals: a quantity may be any 64-bit integer, and twice one
# overflows PostgreSQL's bigint (an error). On SQLite the cast leaves an integer as it is.
_QUANTITY_BUCKET = (
    "CASE WHEN s.quantity IS NULL OR i.quantity IS NULL OR s.quantity = i.quantity THEN NULL"
    " WHEN i.quantity <= 0 THEN 5 WHEN s.quantity = 0 THEN 0"
    " WHEN CAST(s.quantity AS NUMERIC) * 2 < i.quantity THEN 1"
    " WHEN s.quantity < i.quantity THEN 2"
    " WHEN CAST(s.quantity AS NUMERIC) * 2 <= CAST(i.quantity AS NUMERIC) * 3 THEN 3"
    " ELSE 4 END"
)


def _large_price(limits: Limits) -> str:
    """SQL: a stored positive price would change by more than the large change."""
    change, factor = number_text(limits.change), number_text(limits.factor)
    return (
        f"i.price > 0 AND s.price IS NOT NULL AND (s.price < i.price * (1 - {change})"
        f" OR s.price > i.price * (1 + {change}) OR s.price * {factor} <= i.price)"
    )


# How far a price moves either way, as a factor (a price set to 0 moves furthest).
_PRICE_FACTOR = (
    "CASE WHEN s.price > i.price THEN s.price / i.price"
    " WHEN s.price > 0 THEN i.price / s.price ELSE 1e12 END"
)


def _measure(
    conn: Connection,
    fields: list[str],
    limits: Limits,
    *,
    examples: bool = True,
    values: tuple[str, list[Any]] | None = None,
) -> Measured:
    """How far the staged rows would move the stored items they name (see `Measured`);
    without `examples`, only the counts. With `values` (a `WITH` clause naming the staged
    rows, and its parameters), those rows instead of the staging table's."""
    price = _price_bucket(limits) if "price" in fields else "NULL"
    quantity = _QUANTITY_BUCKET if "quantity" in fields else "NULL"
    prefix, params = values or ("", [])
    sql = (
        f"{prefix}SELECT pb, qb, COUNT(*) FROM (SELECT {price} AS pb, {quantity} AS qb"
        f" FROM {STAGE} s JOIN item i ON i.sku = s.sku) t GROUP BY pb, qb"
    )
    rows = (conn.exec_driver_sql(sql, tuple(params)) if params else conn.exec_driver_sql(sql)).all()
    prices = [0] * (len(price_ratios(limits)) + 1)
    quantities = [0] * QUANTITY_BUCKETS
    touched = 0
    for pb, qb, count in rows:
        touched += int(count)
        if pb is not None:
            prices[int(pb)] += int(count)
        if qb is not None:
            quantities[int(qb)] += int(count)
    large: tuple[dict[str, Any], ...] = ()
    if examples and any(n for k, n in enumerate(prices) if is_large(k, limits)):
        large = _changes(
            conn,
            fields,
            limits.largest,
            among=_large_price(limits),
            order=f"{_PRICE_FACTOR} DESC, s.sku",
        )
    zeroed: tuple[dict[str, Any], ...] = ()
    if examples and quantities[0]:
        zeroed = _changes(
            conn,
            fields,
            limits.largest,
            among="i.quantity > 0 AND s.quantity = 0",
            order="i.quantity DESC, s.sku",
        )
    return Measured(touched, tuple(prices), tuple(quantities), large, zeroed)


def is_large(bucket: int, limits: Limits) -> bool:
    """Whether price bucket `bucket` (between `price_ratios`) lies beyond the large
    change, either way (the extreme buckets always do)."""
    ratios = price_ratios(limits)
    below = ratios[bucket - 1] if bucket > 0 else 0.0
    above = ratios[bucket] if bucket < len(ratios) else float("inf")
    return above <= 1 - limits.change or below >= 1 + limits.change


def measure_items(
    session: Session,
    frame: pl.DataFrame,
    *,
    limits: Limits,
    mode: ImportMode = ImportMode.UPSERT,
    count: bool = False,
) -> tuple[int | None, Measured]:
    """How far `frame` (sku and the fields to judge) would move the stored items it
    names, without the rest of a dry run: the guardrails' own pass, which stages only the
    fields its rules read. With `count`, also how many stored items it would change
    (compared on the frame's fields); else None. It finds no examples: a pass that trips
    a rule is previewed in full, examples and all, before it waits.
    """
    if frame.is_empty():
        return (0 if count else None), Measured(0, (), ())
    conn = _connection(session)
    fields = [c for c in frame.columns if c != "sku"]
    if _is_sqlite(conn) and mode is ImportMode.UPSERT and not count:
        return None, _measure_values(conn, frame.select("sku", *fields), fields, limits)
    _stage(conn, frame.select("sku", *fields))
    _skip_by_mode(conn, mode)
    updated = _count(conn, fields)[1] if count else None
    return updated, _measure(conn, fields, limits, examples=False)


# Rows in one SQLite VALUES list. SQLite's own limit on bound parameters (250,000 in the
# driver's build) would allow 31,000 rows of 8 values, but a statement's cost grows faster
# than its rows beyond a few thousand: 400,000 upserted rows in lists of 250-2,000 rows
# took 0.34-0.36 s, of 4,000 0.38 s, 8,000 0.53 s, 16,000 1.14 s; a 1M-row import in
# 50,000-row batches took 12 s to write instead of 2.
VALUES_MOST_ROWS = 1_000


def _values_rows(raw: sqlite3.Connection, width: int, *, besides: int = 0) -> int:
    """How many rows of `width` values one VALUES list holds, with `besides` more
    parameters in its statement."""
    allowed = (raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - besides) // width
    return max(1, min(allowed, VALUES_MOST_ROWS))


def _measure_values(
    conn: Connection, frame: pl.DataFrame, fields: list[str], limits: Limits
) -> Measured:
    """SQLite: measure `frame` from a VALUES list in the query itself, in chunks of
    `_values_rows`, instead of staging it first (1M rows of SKU, price and quantity:
    0.78 s against 1.3 s, the inserts into the staging table being most)."""
    if "price" in frame.columns:
        frame = frame.with_columns(pl.col("price").cast(pl.Float64))
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    most = _values_rows(raw, frame.width)
    row = "(" + ", ".join("?" * frame.width) + ")"
    found = Measured(0, (), ())
    for start in range(0, frame.height, most):
        chunk = frame.slice(start, most)
        columns = (c.to_list() for c in chunk.get_columns())
        params = [v for r in zip(*columns, strict=True) for v in r]
        marks = ", ".join([row] * chunk.height)
        prefix = f"WITH {STAGE}({', '.join(chunk.columns)}) AS (VALUES {marks}) "
        measured = _measure(conn, fields, limits, examples=False, values=(prefix, params))
        found = found.plus(measured)
    return found


class WriteHook(Protocol):
    """Sees a batch's write from inside its transaction (`db.undo_store.BeforeImage`)."""

    def before(self, conn: Connection) -> None:
        """Called just before the batch's upsert."""

    def after(self, conn: Connection, created: int, skus: str, changed: Changed | None) -> None:
        """Called once the batch is written, with the number of new items and their SKUs
        as a JSON array, and on PostgreSQL what the upsert changed (`Changed`; SQLite:
        None)."""


@dataclass(frozen=True)
class Changed:
    """The items an upsert updated: how many, and a JSON array of `[sku, {field: [old,
    new]}, old updated_at]` for each, with only the fields that changed (prices as exact
    text), as PostgreSQL built it in the upsert's own statement."""

    count: int
    json: str


def _changed_fields(fields: list[str], old: str, new: str) -> str:
    """PostgreSQL: a JSON object of `{field: [old, new]}` for the `fields` that differ
    between two row aliases, prices as exact text."""

    def value(row: str, f: str) -> str:
        return f"{row}.{f}::text" if f == "price" else f"{row}.{f}"

    pairs = ", ".join(
        f"'{f}', CASE WHEN {old}.{f} IS DISTINCT FROM {new}.{f}"
        f" THEN json_build_array({value(old, f)}, {value(new, f)}) END"
        for f in fields
    )
    # A field that did not change is null in the object, which json_strip_nulls drops.
    return f"json_strip_nulls(json_build_object({pairs}))"


def _on_conflict(conn: Connection, fields: list[str]) -> str:
    """The upsert's conflict clause: a stored SKU takes the row's `fields` (and a new
    `updated_at`) only when one of them differs, so an unchanged item is not written."""
    assignments = ", ".join(f"{f} = excluded.{f}" for f in [*fields, "updated_at"])
    return (
        f" ON CONFLICT (sku) DO UPDATE SET {assignments}"
        f" WHERE {_differs(conn, fields, 'item', 'excluded')}"
    )


# SQLite gives a new row the rowid one above the table's largest, unless that is the
# largest possible one (then it picks unused ones at random).
_MAX_ROWID = 2**63 - 1


def _last_rowid(conn: Connection, rows: int) -> int | None:
    """SQLite: the item table's largest rowid, when the next `rows` inserts are sure to get
    larger ones (so they, and only they, are the items above it); else None."""
    top = int(conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM item").scalar_one())
    return top if top <= _MAX_ROWID - rows else None


def _new_above(conn: Connection, top: int) -> tuple[int, str]:
    """SQLite: how many items lie above rowid `top` (those this transaction created since
    it read `top`), and their SKUs as a JSON array."""
    count, found = conn.exec_driver_sql(
        "SELECT COUNT(*), COALESCE(json_group_array(sku), '[]') FROM item WHERE id > ?", (top,)
    ).one()
    return int(count), str(found)


def _new_staged(conn: Connection) -> tuple[int, str]:
    """SQLite: how many staged rows are new SKUs, and those SKUs as a JSON array (kept
    inside SQLite as one text: fetching them row by row cost more)."""
    count, found = conn.exec_driver_sql(
        f"SELECT COUNT(*), COALESCE(json_group_array(s.sku), '[]') FROM {STAGE} s"
        f" WHERE NOT EXISTS (SELECT 1 FROM item i WHERE i.sku = s.sku)"
    ).one()
    return int(count), str(found)


@dataclass(frozen=True)
class Prepared:
    """A batch's rows as its write sends them to the database, made by `prepare` ahead of
    the write (while the batch before it is written): SQLite's VALUES parameters (the rows
    in SKU order, flattened) or PostgreSQL's COPY text, and what they were made of."""

    columns: tuple[str, ...]
    rows: int
    values: tuple[Any, ...] | None = None
    csv: bytes | None = None


def _ordered(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` as SQLite binds it: in SKU order, prices as doubles (the sqlite3 driver
    binds no Decimal; NUMERIC affinity stores a double either way)."""
    if "price" in frame.columns:
        frame = frame.with_columns(pl.col("price").cast(pl.Float64))
    return frame.sort("sku")


def prepare(frame: pl.DataFrame, dialect: str) -> Prepared:
    """What `merge_items` sends to a `dialect` database for `frame` (its `frame`
    argument), made ready for it."""
    frame = frame.select("sku", *(c for c in frame.columns if c != "sku"))
    columns, rows = tuple(frame.columns), frame.height
    if dialect == "sqlite":
        ordered = _ordered(frame).get_columns()
        # Row by row, flattened in C.
        values = tuple(chain.from_iterable(zip(*(c.to_list() for c in ordered), strict=True)))
        return Prepared(columns, rows, values=values)
    return Prepared(columns, rows, csv=frame.write_csv(include_header=False).encode("utf-8"))


def _upsert_values(
    conn: Connection, prepared: Prepared, now: datetime, hook: WriteHook | None, top: int
) -> MergeCounts:
    """SQLite, upsert mode, every row named: write the `prepared` rows from VALUES lists
    in the upsert itself, in SKU order, in chunks of `_values_rows`; the new items are the
    ones above rowid `top` afterwards. Staging the rows first cost a third more of the
    write (an `executemany` into the staging table, a count of the new SKUs against it,
    and the upsert's pass over it)."""
    assert prepared.values is not None
    names, fields, width = prepared.columns, list(prepared.columns[1:]), len(prepared.columns)
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    # Two more parameters per statement: its timestamps.
    most = _values_rows(raw, width, besides=2)
    row = "(" + ", ".join("?" * width) + ")"
    picked = ", ".join(f"column{k}" for k in range(1, width + 1))
    stamp = _timestamp(conn, now)
    if hook is not None:
        hook.before(conn)
    written = 0
    for start in range(0, prepared.rows, most):
        values = prepared.values[start * width : (start + most) * width]
        result = conn.exec_driver_sql(
            f"INSERT INTO item ({', '.join(names)}, created_at, updated_at)"
            f" SELECT {picked}, ?, ? FROM (VALUES {', '.join([row] * (len(values) // width))})"
            f" WHERE true{_on_conflict(conn, fields)}",
            (stamp, stamp, *values),
        )
        written += result.rowcount
    created, created_json = _new_above(conn, top)
    if hook is not None:
        hook.after(conn, created, created_json, None)
    return MergeCounts(created, written - created, prepared.rows - written)


def merge_items(
    session: Session,
    frame: pl.DataFrame,
    *,
    now: datetime,
    dry_run: bool = False,
    changes: int = 0,
    hook: WriteHook | None = None,
    mode: ImportMode = ImportMode.UPSERT,
    measure: Limits | None = None,
    prepared: Prepared | None = None,
) -> MergeCounts:
    """Create new items and update changed ones from `frame` (sku + imported fields).

    `mode` leaves stored SKUs (create_only) or new ones (update_only) alone: they are
    neither written nor counted, and their SKUs are in `skipped`.

    Only the columns in `frame` are compared and written; SKUs must be unique in it, and
    it may hold no other column (a sheet of SKUs alone: stored items are unchanged).
    A row without a name (null, or no name column) updates an existing item and leaves
    its name as stored; for a new SKU it is not written and its SKU is in `nameless`.
    With `dry_run`, the counts are computed the same way and nothing is written, and up
    to `changes` of the rows that would change are described, and with `measure` how far
    prices and quantities would move (`Measured`); else `hook` sees the write from inside
    the same transaction. `prepared`: `prepare(frame, ...)` for this database, made ahead.
    """
    if frame.is_empty():
        return MergeCounts(0, 0, 0)
    conn = _connection(session)
    fields = [c for c in frame.columns if c != "sku"]
    batch = (("sku", *fields), frame.height)
    if prepared is not None and (prepared.columns, prepared.rows) != batch:
        raise ValueError(f"rows prepared for {prepared.columns} are not the batch's")
    if not dry_run and _is_sqlite(conn) and mode is ImportMode.UPSERT:
        top = _last_rowid(conn, frame.height)
        # Every row carries a name (the common case): no step needs a staging table.
        if top is not None and "name" in fields and not frame.get_column("name").null_count():
            ready = prepared if prepared and prepared.values is not None else None
            return _upsert_values(conn, ready or prepare(frame, "sqlite"), now, hook, top)
    _stage(conn, frame.select("sku", *fields), csv=prepared.csv if prepared else None)
    skipped = _skip_by_mode(conn, mode)
    nameless: frozenset[str] = frozenset()
    # A whole sheet with names (the common case) pays nothing for these two steps.
    if "name" not in fields or frame.get_column("name").null_count():
        nameless = _drop_nameless_new(conn)
        # Without a name column too: the insert carries every NOT NULL column, because the
        # databases check those before they find the conflict that makes it an update.
        _keep_stored_names(conn)
    staged = frame.height - len(nameless) - len(skipped)
    if dry_run:
        created, updated = _count(conn, fields)
        described = _changes(conn, fields, changes) if changes > 0 else ()
        unchanged = staged - created - updated
        measured = _measure(conn, fields, measure) if measure is not None else None
        return MergeCounts(created, updated, unchanged, nameless, skipped, described, measured)
    columns = ", ".join(["sku", *fields] if "name" in fields else ["sku", "name", *fields])
    stamp = _timestamp(conn, now)
    if hook is not None:
        hook.before(conn)
    if _is_sqlite(conn):
        # SQLite cannot tell an insert from an update in RETURNING; count new SKUs first.
        created, created_json = _new_staged(conn)
        result = conn.exec_driver_sql(
            f"INSERT INTO item ({columns}, created_at, updated_at)"
            f" SELECT {columns}, ?, ? FROM {STAGE} WHERE true ORDER BY sku"
            f"{_on_conflict(conn, fields)}",
            (stamp, stamp),
        )
        written = result.rowcount
        if hook is not None:
            hook.after(conn, created, created_json, None)
        return MergeCounts(created, written - created, staged - written, nameless, skipped)
    upsert = (
        f"INSERT INTO item ({columns}, created_at, updated_at)"
        f" SELECT {columns}, %(now)s, %(now)s FROM {STAGE} ORDER BY sku"
        f"{_on_conflict(conn, fields)}"
    )
    if hook is not None:
        # A subquery in RETURNING reads the statement's own snapshot, so it still sees the
        # row as it was before this upsert changed it: the old values cost no other pass.
        # The new SKUs and the changes come back as JSON texts, which are stored as they are.
        change = f"json_build_array(item.sku, {_changed_fields(fields, 'o', 'item')}, o.updated_at)"
        row = conn.exec_driver_sql(
            f"WITH merged AS ({upsert}"
            f" RETURNING item.sku, (xmax = 0) AS inserted,"
            f" CASE WHEN xmax <> 0 THEN (SELECT {change} FROM item o WHERE o.sku = item.sku)"
            f" END AS change)"
            f" SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FILTER (WHERE NOT inserted),"
            f" COALESCE(json_agg(sku) FILTER (WHERE inserted), '[]')::text,"
            f" COALESCE(json_agg(change) FILTER (WHERE NOT inserted), '[]')::text"
            f" FROM merged",
            {"now": stamp},
        ).one()
        created, updated = int(row[0]), int(row[1])
        hook.after(conn, created, str(row[2]), Changed(updated, str(row[3])))
        return MergeCounts(created, updated, staged - created - updated, nameless, skipped)
    row = conn.exec_driver_sql(
        f"WITH merged AS ({upsert} RETURNING (xmax = 0) AS inserted)"
        f" SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FILTER (WHERE NOT inserted)"
        f" FROM merged",
        {"now": stamp},
    ).one()
    created, updated = int(row[0]), int(row[1])
    return MergeCounts(created, updated, staged - created - updated, nameless, skipped)


def lock_for_transaction(session: Session, key: str) -> None:
    """Serialise transactions that take the same `key` until they end.

    PostgreSQL: a transaction-level advisory lock. SQLite needs none: every writing
    transaction there begins IMMEDIATE and so already holds the database's write lock.
    """
    conn = _connection(session)
    if not _is_sqlite(conn):
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
