"""Bulk item reads and writes, and transaction locks: the one module with dialect SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import Connection
from sqlalchemy.orm import Session

PRICE_DTYPE = pl.Decimal(18, 4)
ITEM_COLUMNS: dict[str, pl.DataType] = {
    "sku": pl.String(),
    "name": pl.String(),
    "description": pl.String(),
    "category": pl.String(),
    "unit": pl.String(),
    "price": PRICE_DTYPE,
    "quantity": pl.Int64(),
    "barcode": pl.String(),
}
# SQLite allows 32,766 bound parameters per statement; stay well below.
_SQLITE_IN_CHUNK = 10_000


def _connection(session: Session) -> Connection:
    return session.connection()


def _is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def _placeholder(conn: Connection) -> str:
    return "?" if _is_sqlite(conn) else "%s"


def fetch_items(session: Session, skus: Sequence[str], fields: Sequence[str]) -> pl.DataFrame:
    """The stored values of `fields` for those of `skus` that exist, as a typed frame."""
    conn = _connection(session)
    columns = ["sku", *(f for f in fields if f != "sku")]
    select_list = ", ".join(columns)
    schema = {c: ITEM_COLUMNS[c] for c in columns}
    if _is_sqlite(conn):
        # SQLite keeps NUMERIC as a binary float; read it as text-free float, rounded below.
        schema = {c: (pl.Float64() if c == "price" else t) for c, t in schema.items()}
        rows: list[Any] = []
        for start in range(0, len(skus), _SQLITE_IN_CHUNK):
            chunk = list(skus[start : start + _SQLITE_IN_CHUNK])
            marks = ", ".join("?" * len(chunk))
            rows.extend(
                conn.exec_driver_sql(
                    f"SELECT {select_list} FROM item WHERE sku IN ({marks})", tuple(chunk)
                ).fetchall()
            )
    else:
        rows = list(
            conn.exec_driver_sql(
                f"SELECT {select_list} FROM item WHERE sku = ANY(%s)", (list(skus),)
            ).fetchall()
        )
    frame = pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")
    if "price" in frame.columns:
        frame = frame.with_columns(pl.col("price").cast(PRICE_DTYPE, strict=False))
    return frame


def _bind_rows(conn: Connection, frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    if _is_sqlite(conn) and "price" in frame.columns:
        # The sqlite3 driver has no Decimal; NUMERIC affinity stores a float either way.
        frame = frame.with_columns(pl.col("price").cast(pl.Float64))
    return frame.rows()


def _timestamp(conn: Connection, now: datetime) -> Any:
    now = now.astimezone(UTC)
    # Match how SQLAlchemy's DateTime stores values on SQLite (naive UTC text).
    return now.replace(tzinfo=None).isoformat(sep=" ") if _is_sqlite(conn) else now


def insert_items(session: Session, frame: pl.DataFrame, *, now: datetime) -> None:
    """Insert new items; `frame` holds `sku` and the fields to set."""
    if frame.is_empty():
        return
    conn = _connection(session)
    mark = _placeholder(conn)
    columns = [*frame.columns, "created_at", "updated_at"]
    stamp = _timestamp(conn, now)
    rows = [(*row, stamp, stamp) for row in _bind_rows(conn, frame)]
    conn.exec_driver_sql(
        f"INSERT INTO item ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
        rows,
    )


def update_items(session: Session, frame: pl.DataFrame, *, now: datetime) -> None:
    """Update existing items by SKU; only the columns in `frame` are written."""
    if frame.is_empty():
        return
    conn = _connection(session)
    mark = _placeholder(conn)
    fields = [c for c in frame.columns if c != "sku"]
    assignments = ", ".join(f"{c} = {mark}" for c in [*fields, "updated_at"])
    stamp = _timestamp(conn, now)
    ordered = frame.select(*fields, "sku")
    rows = [(*row[:-1], stamp, row[-1]) for row in _bind_rows(conn, ordered)]
    conn.exec_driver_sql(f"UPDATE item SET {assignments} WHERE sku = {mark}", rows)


def lock_for_transaction(session: Session, key: str) -> None:
    """Serialise transactions that take the same `key` until they end.

    PostgreSQL: a transaction-level advisory lock. SQLite needs none: every writing
    transaction there begins IMMEDIATE and so already holds the database's write lock.
    """
    conn = _connection(session)
    if not _is_sqlite(conn):
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
