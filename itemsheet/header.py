"""Find the header row of a grid and map its cells to item fields."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from itemsheet.errors import SheetError
from itemsheet.fields import FIELD_NAMES, field_for_header
from itemsheet.messages import quoted

HEADER_SEARCH_ROWS = 20


@dataclass(frozen=True)
class Header:
    """Where the header is and which grid column holds each field."""

    index: int
    columns: dict[str, str]
    warnings: list[str]


def find_header(frame: pl.DataFrame) -> Header:
    """The first of the first 20 rows holding an SKU column, mapped to fields.

    Fails when there is no such row or two header cells name the same field. The SKU is
    the only column every sheet must have, and finding the row already needs it.
    """
    head = frame.head(HEADER_SEARCH_ROWS)
    for index, cells in enumerate(head.iter_rows()):
        if any(field_for_header(cell) == "sku" for cell in cells):
            return _map_header(index, dict(zip(frame.columns, cells, strict=True)))
    raise SheetError(
        f"no header row with an SKU column was found in the first {HEADER_SEARCH_ROWS} rows;"
        " name the column 'SKU' (or 'Item code', 'Code', 'Article', ...)"
    )


def _map_header(index: int, cells: dict[str, str | None]) -> Header:
    columns: dict[str, str] = {}
    labels: dict[str, str] = {}
    ignored: list[str] = []
    for column, label in cells.items():
        if label is None or not label.strip():
            continue
        field = field_for_header(label)
        if field is None:
            ignored.append(label.strip())
        elif field in columns:
            raise SheetError(
                f"columns {quoted(labels[field])} and {quoted(label)} both map to {field};"
                " keep one of them"
            )
        else:
            columns[field] = column
            labels[field] = label.strip()
    ordered = {f: columns[f] for f in FIELD_NAMES if f in columns}
    warnings = [f"column {quoted(label)} is not an item field and was ignored" for label in ignored]
    return Header(index, ordered, warnings)
