"""Before-images and their undo: the dialect SQL of undoing an import, beside `item_store`.

An import batch records, in its own transaction, what its undo needs (`BeforeImage`, a
hook of `merge_items`): the SKUs it creates and, for each item it changes, the fields that
differ with their old and new values (PostgreSQL: returned by the upsert itself; SQLite:
kept by a trigger while the upsert runs). That is stored as one
`item_undo` row per batch, so a batch and its before-image commit or roll back together,
and an unchanged row costs nothing.

An undo batch (`restore`) stages one before-image, finds the items changed since the
import (their `updated_at` is no longer the batch's, or a field it wrote no longer holds
what it wrote), leaves those alone unless forced, deletes the items it created and puts
back the old values, all in the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from db.item_store import _STAGE_TYPES, Changed, _is_sqlite, _timestamp
from db.models import ItemUndo

UNDO_STAGE = "item_undo_stage"
FIELDS = [f for f in _STAGE_TYPES if f != "sku"]
CHANGED = "changed since the import"
_STORE = insert(ItemUndo)
GONE = "no longer exists"


@dataclass
class BeforeImage:
    """What one batch is about to do, as its undo needs it; as a `WriteHook` of
    `merge_items`, it reads that from inside the batch's transaction and stores it."""

    session: Session
    job_id: uuid.UUID
    batch_no: int
    written_at: datetime

    def before(self, conn: Connection) -> None:
        """SQLite: a trigger that keeps the old values as the upsert overwrites them.
        PostgreSQL: nothing; the upsert returns what it did."""
        if _is_sqlite(conn):
            _arm_capture(conn)

    def after(self, conn: Connection, created: int, skus: str, changed: Changed | None) -> None:
        """Store the image (nothing when the batch created and changed nothing)."""
        if changed is None:
            found = _captured(conn)
            changed = Changed(
                len(found), json.dumps(found, separators=(",", ":"), ensure_ascii=False)
            )
        if not created + changed.count:
            return
        # One cached statement with parameters: a `.values(...)` built per batch was
        # compiled anew each time.
        conn.execute(
            _STORE,
            {
                "job_id": self.job_id,
                "batch_no": self.batch_no,
                "written_at": self.written_at,
                "entries": created + changed.count,
                "created": skus,
                "changed": changed.json,
            },
        )


def _distinct(conn: Connection, left: str, right: str) -> str:
    return f"{left} IS NOT {right}" if _is_sqlite(conn) else f"{left} IS DISTINCT FROM {right}"


# SQLite: a trigger of this connection alone (TEMP) keeps the old and new values of each
# item the upsert updates, while it updates it: no second pass over the batch, and only
# changed items cost anything (a join before the write added 25-40 % to it). It is made
# once per connection and switched on only around an import's upsert (a schema change per
# batch would make SQLite prepare every statement again). Each batch asks for it with
# `IF NOT EXISTS`, which changes no schema once it is there: a mark on the connection
# would outlive a rollback of the batch that made it, which takes the trigger and its
# tables away again, and the batch's retry on that connection would fail.
CAPTURE = "item_undo_capture"


def _arm_capture(conn: Connection) -> None:
    values = ", ".join(f"old.{f}, new.{f}" for f in FIELDS)
    columns = ", ".join(f"o_{f}, n_{f}" for f in FIELDS)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {CAPTURE} (sku, {columns}, o_updated_at)"
    )
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {CAPTURE}_on (armed INTEGER)")
    conn.exec_driver_sql(
        f"CREATE TEMP TRIGGER IF NOT EXISTS {CAPTURE} AFTER UPDATE ON main.item"
        f" WHEN EXISTS (SELECT 1 FROM {CAPTURE}_on)"
        f" BEGIN INSERT INTO {CAPTURE} VALUES (old.sku, {values}, old.updated_at); END"
    )
    conn.exec_driver_sql(f"DELETE FROM {CAPTURE}")
    conn.exec_driver_sql(f"INSERT INTO {CAPTURE}_on VALUES (1)")


def _captured(conn: Connection) -> list[list[Any]]:
    """The changed fields of each item the upsert updated; capturing is switched off
    again, so nothing else this connection writes is kept."""
    conn.exec_driver_sql(f"DELETE FROM {CAPTURE}_on")
    rows = conn.exec_driver_sql(f"SELECT * FROM {CAPTURE}").all()
    conn.exec_driver_sql(f"DELETE FROM {CAPTURE}")
    changed = []
    for row in rows:
        values = {
            name: [row[1 + 2 * k], row[2 + 2 * k]]
            for k, name in enumerate(FIELDS)
            if row[1 + 2 * k] != row[2 + 2 * k]
        }
        changed.append([row[0], values, row[-1]])
    return changed


def keep_before(
    session: Session, job_id: uuid.UUID, batch_no: int, *, written_at: datetime
) -> BeforeImage:
    """The `merge_items` hook that reads a batch's before-image and stores it with it."""
    return BeforeImage(session, job_id, batch_no, written_at)


def load_before(session: Session, job_id: uuid.UUID, batch_no: int) -> ItemUndo | None:
    """One batch's before-image."""
    query = select(ItemUndo).where(ItemUndo.job_id == job_id, ItemUndo.batch_no == batch_no)
    return session.scalars(query).one_or_none()


@dataclass(frozen=True)
class Restored:
    """What one undo batch did: items deleted and restored, and the ones left alone
    (ordinal, SKU, why)."""

    deleted: int
    restored: int
    conflicts: list[tuple[int, str, str]]


def _stage_types(conn: Connection) -> str:
    # was_at: the `updated_at` an updated item had before the import (SQLite: its text).
    stamp = "TEXT" if _is_sqlite(conn) else "TIMESTAMPTZ"
    columns = ["ord BIGINT", "sku VARCHAR(64)", "created INTEGER", f"was_at {stamp}"]
    for name in FIELDS:
        kind = _STAGE_TYPES[name]
        columns += [f"m_{name} INTEGER", f"b_{name} {kind}", f"a_{name} {kind}"]
    return ", ".join(columns)


def _was_at(conn: Connection, entry: list[Any]) -> Any:
    """The old `updated_at` of a `changed` entry as the stage takes it; None in entries
    written before it was recorded."""
    if len(entry) < 3 or entry[2] is None:
        return None
    return entry[2] if _is_sqlite(conn) else datetime.fromisoformat(entry[2])


def _value(conn: Connection, name: str, value: Any) -> Any:
    if value is None or name != "price":
        return value
    # The sqlite3 driver binds no Decimal; PostgreSQL's numeric gets the exact text back.
    return float(value) if _is_sqlite(conn) else Decimal(str(value))


def _stage_rows(conn: Connection, image: ItemUndo, first: int) -> None:
    if _is_sqlite(conn):
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {UNDO_STAGE} ({_stage_types(conn)})")
        conn.exec_driver_sql(f"DELETE FROM {UNDO_STAGE}")
    else:
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {UNDO_STAGE} ({_stage_types(conn)})"
            " ON COMMIT DELETE ROWS"
        )
    empty = [0, None, None] * len(FIELDS)
    rows: list[tuple[Any, ...]] = []
    for sku in json.loads(image.created):
        rows.append((first + len(rows), sku, 1, None, *empty))
    for entry in json.loads(image.changed):
        sku, values = entry[0], entry[1]
        cells: list[Any] = []
        for name in FIELDS:
            before, after = values.get(name, (None, None))
            cells += [int(name in values), _value(conn, name, before), _value(conn, name, after)]
        rows.append((first + len(rows), sku, 0, _was_at(conn, entry), *cells))
    width = 4 + 3 * len(FIELDS)
    marks = ", ".join(["?" if _is_sqlite(conn) else "%s"] * width)
    conn.exec_driver_sql(f"INSERT INTO {UNDO_STAGE} VALUES ({marks})", rows)


def restore(
    session: Session, image: ItemUndo, *, first: int, force: bool, now: datetime
) -> Restored:
    """Undo one batch of an import from its before-image; `first` numbers its entries.

    An item whose changed fields no longer hold what the batch wrote, or whose `updated_at`
    is neither the one the batch gave it nor that of an undo that restored it to that
    (`item_restored`), was changed since: it is left alone and reported, unless `force`.
    An item that no longer exists is reported either way. Each item restored is recorded
    in `item_restored` with the `updated_at` it had before the import.
    """
    conn = session.connection()
    _stage_rows(conn, image, first)
    param = "?" if _is_sqlite(conn) else "%s"
    stamp = _timestamp(conn, image.written_at)
    wrote = " OR ".join(
        f"(u.m_{f} = 1 AND {_distinct(conn, f'i.{f}', f'u.a_{f}')})" for f in FIELDS
    )
    # Changed since by its time: not the batch's, and not an undo's that put it back as
    # the batch left it (undoing a later import, newest first, is no conflict).
    touched = (
        f"({_distinct(conn, 'i.updated_at', param)} AND NOT EXISTS (SELECT 1 FROM"
        f" item_restored r WHERE r.sku = i.sku AND r.restored_at = i.updated_at"
        f" AND r.as_of = {param}))"
    )
    found = conn.exec_driver_sql(
        f"SELECT u.ord, u.sku, CASE WHEN i.sku IS NULL THEN 1 ELSE 0 END"
        f" FROM {UNDO_STAGE} u LEFT JOIN item i ON i.sku = u.sku"
        f" WHERE i.sku IS NULL OR {touched} OR {wrote}"
        f" ORDER BY u.ord",
        (stamp, stamp),
    ).all()
    conflicts = [(int(o), str(s), GONE if gone else CHANGED) for o, s, gone in found]
    skipped = [(o,) for o, _, why in conflicts if why == GONE or not force]
    if skipped:
        conn.exec_driver_sql(f"DELETE FROM {UNDO_STAGE} WHERE ord = {param}", skipped)
    deleted = conn.exec_driver_sql(
        f"DELETE FROM item WHERE sku IN (SELECT sku FROM {UNDO_STAGE} WHERE created = 1)"
    ).rowcount
    sets = ", ".join(f"{f} = CASE WHEN u.m_{f} = 1 THEN u.b_{f} ELSE item.{f} END" for f in FIELDS)
    when = _timestamp(conn, now)
    restored = conn.exec_driver_sql(
        f"UPDATE item SET {sets}, updated_at = {param} FROM {UNDO_STAGE} u"
        f" WHERE u.created = 0 AND u.sku = item.sku",
        (when,),
    ).rowcount
    # What each restored item was as of: its time before the import, or, when an undo had
    # restored it then, the time that undo restored it to (so a chain of undos resolves).
    conn.exec_driver_sql(
        f"INSERT INTO item_restored (sku, restored_at, as_of)"
        f" SELECT u.sku, {param}, COALESCE((SELECT MAX(r.as_of) FROM item_restored r"
        f" WHERE r.sku = u.sku AND r.restored_at = u.was_at), u.was_at)"
        f" FROM {UNDO_STAGE} u WHERE u.created = 0 AND u.was_at IS NOT NULL",
        (when,),
    )
    reported = [c for c in conflicts if c[2] == GONE or not force]
    return Restored(int(deleted), int(restored), reported)
