"""The guardrails' pass over a copy of the stored items, read while the sheet is parsed.

A big sheet's guardrails' pass joined every step of its rows with the item table: 1.3 s
for a million rows on SQLite, 1.3-2.5 s on PostgreSQL, after the parse. While the parse
child parses, the run's own process waits and the machine's other core is idle, so the
run reads every stored item's SKU, price and quantity then (`read_stored`: 0.2-0.5 s
for 500,000 items) and measures each step against that copy in polars (`measure_stored`:
0.15 s for a million rows), with the arithmetic the database itself would use: SQLite's
doubles, PostgreSQL's exact decimals (as whole ten-thousandths, in 128-bit integers).

`item_store._measure` stays the rule: both follow `item_store.price_cuts` and the same
quantity buckets, and `tests/db/test_item_snapshot.py` holds them to the same counts on
both databases. Only what the rules read of a full sheet (price, quantity) is copied; a
pass that judges other fields, or in create_only mode, measures in SQL.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

import polars as pl
from sqlalchemy.orm import Session

from db.enums import ImportMode
from db.item_store import QUANTITY_BUCKETS, Cut, Limits, Measured, number_text, price_cuts

# The fields a copy holds besides the SKU.
COPIED = ("price", "quantity")
# Prices in whole ten-thousandths: NUMERIC(18, 4) holds no finer ones.
_SCALE = 10_000
_WIDE = pl.Int128


@dataclass(frozen=True)
class StoredItems:
    """The stored items' SKU, price and quantity. `exact`: prices are whole
    ten-thousandths (PostgreSQL's decimals); else doubles, as SQLite keeps them."""

    items: pl.DataFrame
    exact: bool


def count_stored(session: Session) -> int:
    """How many items are stored."""
    return int(session.connection().exec_driver_sql("SELECT COUNT(*) FROM item").scalar_one())


def read_stored(session: Session) -> StoredItems:
    """Every stored item's SKU, price and quantity, in the caller's transaction."""
    conn = session.connection()
    raw = conn.connection.driver_connection
    if isinstance(raw, sqlite3.Connection):
        rows = raw.execute("SELECT sku, price, quantity FROM item").fetchall()
        # NUMERIC affinity keeps a whole price as an integer: as a double it is the same.
        frame = pl.DataFrame(
            rows,
            schema=[("sku", pl.String), ("price", pl.Float64), ("quantity", pl.Int64)],
            orient="row",
            strict=False,
        )
        return StoredItems(frame, exact=False)
    # One text value built by the server, fields and items apart by the separators no
    # stored value holds (validation drops control characters from every cell): one fetch
    # and polars' reader, instead of half a million rows of COPY through Python.
    row = conn.exec_driver_sql(
        "SELECT COUNT(*), string_agg(concat(sku, chr(31), (price * %(scale)s)::bigint,"
        " chr(31), quantity), chr(30)) FROM item",
        {"scale": _SCALE},
    ).one()
    count, text = int(row[0]), row[1] or ""
    frame = pl.read_csv(
        text.encode("utf-8"),
        has_header=False,
        separator="\x1f",
        eol_char="\x1e",
        quote_char=None,
        schema={"sku": pl.String, "price": pl.Int64, "quantity": pl.Int64},
    )
    if frame.height != count:
        raise ValueError(f"read {frame.height:,} of {count:,} stored items")
    return StoredItems(frame, exact=True)


def can_measure(fields: list[str], mode: ImportMode) -> bool:
    """Whether a pass that judges `fields` in `mode` can measure against a copy."""
    return mode is not ImportMode.CREATE_ONLY and set(fields) <= set(COPIED)


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
