"""The item fields of the contract: types, limits and the header spellings that map to them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from itemsheet.messages import KEY_CHARS


class Kind(StrEnum):
    """How a field's cells are read."""

    TEXT = "text"
    PRICE = "price"
    QUANTITY = "quantity"


@dataclass(frozen=True)
class Field:
    """One importable column; `required`: every sheet must have it, and every row a value."""

    name: str
    kind: Kind
    required: bool
    max_len: int | None
    aliases: tuple[str, ...]


FIELDS: tuple[Field, ...] = (
    Field(
        "sku",
        Kind.TEXT,
        True,
        64,
        (
            "sku",
            "item code",
            "item no",
            "item number",
            "code",
            "article",
            "part number",
            "product code",
        ),
    ),
    # Not required in every sheet or row: a name is needed only to create an item, which
    # the writer decides against the stored items (see `db.item_store.merge_items`).
    Field("name", Kind.TEXT, False, 255, ("name", "item name", "product name", "title")),
    Field("description", Kind.TEXT, False, 4000, ("description", "desc", "details")),
    Field("category", Kind.TEXT, False, 100, ("category", "group", "item group")),
    Field("unit", Kind.TEXT, False, 20, ("unit", "uom", "unit of measure")),
    Field("price", Kind.PRICE, False, None, ("price", "unit price", "sales price")),
    Field("quantity", Kind.QUANTITY, False, None, ("quantity", "qty", "stock", "on hand")),
    Field("barcode", Kind.TEXT, False, 32, ("barcode", "ean", "upc", "gtin")),
)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

_SEPARATORS = re.compile(r"[\s_.\-]+")


def fold_header(text: str | None) -> str:
    """A whole header cell folded for matching: case, outer spaces, a trailing `*`, and
    ` _-.` alike."""
    if text is None:
        return ""
    folded = text.strip().casefold().removesuffix("*").strip()
    return _SEPARATORS.sub(" ", folded).strip()


def normalise_header(text: str | None) -> str:
    """A header cell as a mapping names it (its key): folded, at most `KEY_CHARS` long.

    Normalising a key again gives the same key (the page sends a preview's keys back as a
    mapping), so folding is repeated on the clipped text: a cut can leave a space or a `*`
    at the end.
    """
    key = fold_header(text)
    while (again := fold_header(key[:KEY_CHARS])) != key:
        key = again
    return key


ALIASES: dict[str, str] = {normalise_header(a): f.name for f in FIELDS for a in f.aliases}


def field_for_header(text: str | None) -> str | None:
    """The field a header cell names, or None."""
    return ALIASES.get(normalise_header(text))
