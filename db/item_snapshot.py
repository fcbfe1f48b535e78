"""A copy of the stored items, read while the sheet is parsed, for the guardrails' pass
and the writing pass.

A big sheet's guardrails' pass joined every step of its rows with the item table: 1.3 s
for a million rows on SQLite, 1.3-2.5 s on PostgreSQL, after the parse. While the parse
child parses, the run's own process waits and the machine's other core is idle, so the
run reads every stored item then (`read_stored`: 0.9-1.1 s for 500,000 items, in chunks)
and measures each step against that copy in polars (`measure_stored`: 0.15 s for a
million rows), with the arithmetic the database itself would use: SQLite's doubles,
PostgreSQL's exact decimals (as whole ten-thousandths, in 128-bit integers).

The writing pass leaves out of each batch the rows equal to their stored item in every
field they carry (`same_as_stored`): the database would find them unchanged and write
nothing, after a lookup (and on PostgreSQL a row lock) each. A sheet sent again with a
few changes is mostly such rows.

`item_store._measure` stays the rule: both follow `item_store.price_cuts` and the same
quantity buckets, and `tests/db/test_item_snapshot.py` holds them to the same counts on
both databases, as it holds `same_as_stored` to the upsert's own test of a change. A pass
that judges fields other than price and quantity, or in create_only mode, measures in SQL.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

import polars as pl
from sqlalchemy.orm import Session

from db.enums import ImportMode
from db.item_store import (
    _STAGE_TYPES,
    QUANTITY_BUCKETS,
    Cut,
    Limits,
    Measured,
    number_text,
    price_cuts,
)

# The fields a copy holds besides the SKU: every one a sheet can write.
COPIED = tuple(f for f in _STAGE_TYPES if f != "sku")
# What the guardrails' measure of a copy reads.
MEASURED = ("price", "quantity")
# Prices in whole ten-thousandths: NUMERIC(18, 4) holds no finer ones.
_SCALE = 10_000
_WIDE = pl.Int128
# Stored items are read this many at a time: the driver's rows of a million items at once
# would cost the run process several hundred MB more for a moment.
READ_CHUNK = 50_000


@dataclass(frozen=True)
class StoredItems:
    """The stored items (SKU and `COPIED`), in SKU order. `exact`: prices are whole
    ten-thousandths (PostgreSQL's decimals); else doubles, as SQLite keeps them."""

    items: pl.DataFrame
    exact: bool


def count_stored(session: Session) -> int:
    """How many items are stored."""
    return int(session.connection().exec_driver_sql("SELECT COUNT(*) FROM item").scalar_one())


def read_stored(session: Session) -> StoredItems | None:
    """Every stored item, in the caller's transaction; None on SQLite when an item holds a
    value of another type than its column's (SQLite keeps what it is given): read as that
    type, it could seem equal to a sheet's value the database finds different."""
    conn = session.connection()
    raw = conn.connection.driver_connection
    assert raw is not None
    exact = not isinstance(raw, sqlite3.Connection)
    odd = f"SELECT EXISTS (SELECT 1 FROM item WHERE {_ODD})"
    if not exact and conn.exec_driver_sql(odd).scalar():
        return None
    price = f"(price * {_SCALE})::bigint" if exact else "price"
    query = f"SELECT sku, {', '.join(price if f == 'price' else f for f in COPIED)} FROM item"
    schema = [(name, pl.Int64 if exact and name == "price" else _TYPES[name]) for name in _READ]
    # PostgreSQL: a server-side cursor, so that the driver holds one chunk at a time.
    cursor = raw.cursor(name="stored_items") if exact else raw.cursor()
    try:
        cursor.execute(query)
        chunks = []
        while rows := cursor.fetchmany(READ_CHUNK):
            # NUMERIC affinity keeps a whole price as an integer: as a double it is the same.
            chunks.append(pl.DataFrame(rows, schema=schema, orient="row", strict=False))
    finally:
        cursor.close()
    items = pl.concat(chunks) if chunks else pl.DataFrame(schema=schema)
    return StoredItems(items.sort("sku"), exact=exact)


_TYPES = {
    "sku": pl.String,
    "name": pl.String,
    "description": pl.String,
    "category": pl.String,
    "unit": pl.String,
    "price": pl.Float64,
    "quantity": pl.Int64,
    "barcode": pl.String,
}
_READ = ("sku", *COPIED)
# SQLite: an item with a value of another storage class than the one its column is read as.
_CLASSES = {pl.String: "'text'", pl.Float64: "'integer', 'real'", pl.Int64: "'integer'"}
_ODD = " OR ".join(f"typeof({f}) NOT IN ({_CLASSES[_TYPES[f]]}, 'null')" for f in _READ)


def same_as_stored(rows: pl.DataFrame, stored: StoredItems) -> pl.Series:
    """Which of `rows` (SKU and fields of the item table) equal their stored item in every
    field they carry: the ones an upsert or update_only would leave unchanged. A new SKU
    is never one.

    Compared as the database compares them: texts and quantities exactly, prices as
    PostgreSQL's decimals or as the doubles SQLite is given (`item_store._ordered`).
    Where polars could see no difference that the database would, a row is written: the
    other way round is only a lookup spent.
    """
    fields = [c for c in rows.columns if c != "sku"]
    old = stored.items
    if old.is_empty():
        return pl.Series("same", [False] * rows.height, dtype=pl.Boolean)
    # The stored item at the row's SKU's place in SKU order (a neighbour when there is none).
    at = old.get_column("sku").search_sorted(rows.get_column("sku")).clip(0, old.height - 1)
    olds = old.select("sku", *fields)[at]
    new = rows.select("sku", *fields)
    if "price" in fields:
        if stored.exact:
            new = new.with_columns((pl.col("price") * _SCALE).cast(_WIDE))
            olds = olds.with_columns(pl.col("price").cast(_WIDE))
        else:
            new = new.with_columns(pl.col("price").cast(pl.Float64))
    pairs = new.hstack(olds.rename(lambda c: f"{c}_i"))
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_i")) for c in ("sku", *fields))
    return pairs.select(same.alias("same")).to_series()


def can_measure(fields: list[str], mode: ImportMode) -> bool:
    """Whether a pass that judges `fields` in `mode` can measure against a copy."""
    return mode is not ImportMode.CREATE_ONLY and set(fields) <= set(MEASURED)


def measure_stored(
    stored: StoredItems, frame: pl.DataFrame, limits: Limits, *, count: bool
) -> tuple[int | None, Measured]:
    """What `item_store.measure_items` finds for `frame` (SKU and the judged fields, a
    subset of `COPIED`; upsert or update_only), measured against `stored`."""
    fields = [c for c in frame.columns if c != "sku"]
    if frame.is_empty():
        return (0 if count else None), Measured(0, (), ())
    new = frame
    if "price" in fields:
        if stored.exact:
            new = new.with_columns((pl.col("price") * _SCALE).cast(_WIDE))
        else:
            new = new.with_columns(pl.col("price").cast(pl.Float64))
    old = stored.items.select("sku", *fields)
    if stored.exact and "price" in fields:
        old = old.with_columns(pl.col("price").cast(_WIDE))
    joined = new.join(old, on="sku", how="inner", suffix="_i")
    buckets = joined.select(
        (_price_bucket(limits, exact=stored.exact) if "price" in fields else pl.lit(None))
        .cast(pl.Int32)
        .alias("pb"),
        (_quantity_bucket() if "quantity" in fields else pl.lit(None)).cast(pl.Int32).alias("qb"),
    )
    prices = [0] * (len(price_cuts(limits)) + 1)
    for bucket, n in buckets.group_by("pb").len().drop_nulls("pb").iter_rows():
        prices[bucket] = n
    quantities = [0] * QUANTITY_BUCKETS
    for bucket, n in buckets.group_by("qb").len().drop_nulls("qb").iter_rows():
        quantities[bucket] = n
    updated = None
    if count:
        differs = pl.any_horizontal(pl.col(f).ne_missing(pl.col(f"{f}_i")) for f in fields)
        updated = int(joined.select(differs.sum()).item())
    return updated, Measured(joined.height, tuple(prices), tuple(quantities))


def _times(column: str, by: float, *, exact: bool) -> tuple[pl.Expr, pl.Expr]:
    """`column * by` as the database computes it, as the two sides of a comparison: with
    `exact`, `by` as a fraction p/q and `column * p` against the other side times q."""
    if not exact:
        return pl.col(column) * float(number_text(by)), pl.lit(1.0)
    p, q = Decimal(number_text(by)).as_integer_ratio()
    return pl.col(column) * pl.lit(p, _WIDE), pl.lit(q, _WIDE)


def _price_bucket(limits: Limits, *, exact: bool) -> pl.Expr:
    """`item_store._price_bucket` over the joined columns `price` (new) and `price_i`."""
    new, old = pl.col("price"), pl.col("price_i")
    chain = pl.when(new.is_null() | old.is_null() | (old <= 0) | (new == old)).then(None)
    for index, how, by in price_cuts(limits):
        if how is Cut.DROP_BY_FACTOR:  # new * by <= old
            scaled, q = _times("price", by, exact=exact)
            test = scaled <= old * q
        else:  # new < old * by, or new <= old * by
            scaled, q = _times("price_i", by, exact=exact)
            test = new * q < scaled if how is Cut.BELOW else new * q <= scaled
        chain = chain.when(test).then(index)  # type: ignore[assignment]
    return chain.otherwise(len(price_cuts(limits)))


def _quantity_bucket() -> pl.Expr:
    """`item_store._QUANTITY_BUCKET` over `quantity` (new) and `quantity_i`, in 128-bit
    integers (no product of two 64-bit quantities overflows)."""
    new, old = pl.col("quantity").cast(_WIDE), pl.col("quantity_i").cast(_WIDE)
    return (
        pl.when(new.is_null() | old.is_null() | (new == old))
        .then(None)
        .when(old <= 0)
        .then(5)
        .when(new == 0)
        .then(0)
        .when(new * 2 < old)
        .then(1)
        .when(new < old)
        .then(2)
        .when(new * 2 <= old * 3)
        .then(3)
        .otherwise(4)
    )
