"""The item fields of the contract: types, limits and the header spellings that map to them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from itemsheet.sheet.messages import KEY_CHARS


class Kind(StrEnum):
    """How a field's cells are read."""

    TEXT = "text"
    PRICE = "price"
    QUANTITY = "quantity"


@dataclass(frozen=True)
class Field:
    """One importable column; `required`: every sheet must have it, and every row a value.

    `label` (the header a template or an export writes; one of the aliases), `example` (the
    template's example value) and `note` (said about the field in a template) are what
    the template shows; its explanation sheet is written from this table.
    """

    name: str
    kind: Kind
    required: bool
    max_len: int | None
    aliases: tuple[str, ...]
    label: str = ""
    example: str = ""
    note: str = ""


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
        label="SKU",
        example="EXAMPLE-001",
        note="The item's key: matched exactly (trimmed, case-sensitive). Every row needs one.",
    ),
    # Not required in every sheet or row: a name is needed only to create an item, which
    # the writer decides against the stored items (see `db.item_store.merge_items`).
    Field(
        "name",
        Kind.TEXT,
        False,
        255,
        ("name", "item name", "product name", "title"),
        label="Name",
        example="Example item",
        note="Needed to create an item; an empty cell keeps an existing item's name.",
    ),
    Field(
        "description",
        Kind.TEXT,
        False,
        4000,
        ("description", "desc", "details"),
        label="Description",
        example="Replace this row with your items",
        note="An empty cell clears the stored value.",
    ),
    Field(
        "category",
        Kind.TEXT,
        False,
        100,
        ("category", "group", "item group"),
        label="Category",
        example="Examples",
        note="An empty cell clears the stored value.",
    ),
    Field(
        "unit",
        Kind.TEXT,
        False,
        20,
        ("unit", "uom", "unit of measure"),
        label="Unit",
        example="pcs",
        note="An empty cell clears the stored value.",
    ),
    Field(
        "price",
        Kind.PRICE,
        False,
        None,
        ("price", "unit price", "sales price"),
        label="Price",
        example="9.99",
        note="1,234.50 and 1.234,56 are read as written; a currency sign is dropped.",
    ),
    Field(
        "quantity",
        Kind.QUANTITY,
        False,
        None,
        ("quantity", "qty", "stock", "on hand"),
        label="Quantity",
        example="10",
        note="An empty cell clears the stored value.",
    ),
    Field(
        "barcode",
        Kind.TEXT,
        False,
        32,
        ("barcode", "ean", "upc", "gtin"),
        label="Barcode",
        example="4006381333931",
        note="Kept as text: leading zeros and every digit stay.",
    ),
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
