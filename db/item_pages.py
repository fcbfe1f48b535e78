"""Items read a page at a time for an export: by SKU key (never by offset), and the SKUs
an import wrote, a batch at a time, from its before-images (`item_undo`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from db.models import Item, ItemUndo

# The imported fields, in the contract's order: what an export writes. The price comes as
# the driver gives it (SQLite: the double it stores, an int when whole; PostgreSQL: a
# Decimal): SQLAlchemy's conversion of SQLite's double to a Decimal cost half the read.
ITEM_COLUMNS = (
    Item.sku,
    Item.name,
    Item.description,
    Item.category,
    Item.unit,
    type_coerce(Item.price, NullType()).label("price"),
    Item.quantity,
    Item.barcode,
)


@dataclass(frozen=True)
class ItemFilter:
    """Which items an export holds: SKUs starting with `sku_prefix` (case-sensitive),
    changed (`updated_at`) at or after `changed_since`."""

    sku_prefix: str | None = None
    changed_since: datetime | None = None


def item_page(
    session: Session,
    chosen: ItemFilter,
    *,
    after: str | None,
    limit: int,
    skus: Sequence[str] | None = None,
) -> list[Any]:
    """Up to `limit` items in SKU order after the SKU `after`, among `skus` if given."""
    query = select(*ITEM_COLUMNS)
    prefix = chosen.sku_prefix
    if prefix:
        # Not LIKE, which ignores case on SQLite and reads `_` and `%` as patterns; and no
        # range on the SKU either: under a linguistic collation (PostgreSQL) a prefix's
        # SKUs need not sort together. Paging by key keeps the scan to one pass in all.
        query = query.where(func.substr(Item.sku, 1, len(prefix)) == prefix)
    if chosen.changed_since is not None:
        query = query.where(Item.updated_at >= chosen.changed_since)
    if after is not None:
        query = query.where(Item.sku > after)
    if skus is not None:
        query = query.where(Item.sku.in_(list(skus)))
    # Core, not the ORM's row loading, which took half the time of an export.
    return list(session.connection().execute(query.order_by(Item.sku).limit(limit)).all())


def written_skus(
    session: Session, job_id: uuid.UUID, *, after_batch: int
) -> tuple[int, list[str]] | None:
    """(batch number, sorted SKUs) of the first batch of the import after `after_batch`
    that created or updated items: what its before-image recorded; None after the last."""
    query = (
        select(ItemUndo.batch_no, ItemUndo.created, ItemUndo.changed)
        .where(ItemUndo.job_id == job_id, ItemUndo.batch_no > after_batch)
        .order_by(ItemUndo.batch_no)
        .limit(1)
    )
    row = session.execute(query).one_or_none()
    if row is None:
        return None
    created: list[str] = json.loads(row.created)
    changed: list[list[Any]] = json.loads(row.changed)
    return int(row.batch_no), sorted({*created, *(str(entry[0]) for entry in changed)})
