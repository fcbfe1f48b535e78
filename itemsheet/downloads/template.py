"""The import template: the contract's columns, one example row and, in the xlsx, a sheet
that explains each field, all written from the field table the validator reads
(`itemsheet.sheet.fields.FIELDS`), so the template and the import cannot disagree."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from itemsheet.downloads.exports import WIDTHS, FileFormat, csv_chunks
from itemsheet.downloads.xlsx_writer import Cell, SheetLayout, XlsxStream
from itemsheet.sheet.fields import FIELDS, Field, Kind
from itemsheet.sheet.header import HEADER_SEARCH_ROWS

SHEETS = ("Items", "Fields")
FIELDS_HEADER = ["Column", "Field", "Required", "Type", "Limit", "Header names", "Notes"]
REQUIRED_MARK = " *"  # header matching ignores a trailing `*`
REQUIRED_NOTE = "Required: every row needs a value here, and every sheet this column."
RULES = (
    f"The header is the first row, among the first {HEADER_SEARCH_ROWS}, that has an SKU"
    " column; rows above it are ignored.",
    "Any header name of a field may be used, in any case, with spaces, '_', '-' or '.'"
    " between words. Columns that name no field are ignored.",
    "Only the columns present are written: a sheet of SKU and Price updates prices alone.",
    "Replace the example row with your items.",
)


def type_of(field: Field) -> str:
    """What a field's cells hold, in words."""
    return {
        Kind.TEXT: "text",
        Kind.PRICE: "decimal number",
        Kind.QUANTITY: "whole number",
    }[field.kind]


def limit_of(field: Field) -> str:
    """A field's limits, in words."""
    if field.kind is Kind.PRICE:
        return ">= 0, rounded to 4 decimal places"
    if field.kind is Kind.QUANTITY:
        return ">= 0"
    low = "1" if field.required else "0"
    return f"{low}-{field.max_len} characters"


def field_rows() -> list[list[Cell]]:
    """The explanation sheet: one row per field, then the general rules."""
    rows: list[list[Cell]] = [list(FIELDS_HEADER)]
    for field in FIELDS:
        rows.append(
            [
                field.label,
                field.name,
                "yes" if field.required else "no",
                type_of(field),
                limit_of(field),
                ", ".join(field.aliases),
                field.note,
            ]
        )
    rows.append([])
    rows.extend([rule] for rule in RULES)
    return rows


def _example(field: Field) -> Cell:
    if field.kind is Kind.PRICE:
        return Decimal(field.example)
    if field.kind is Kind.QUANTITY:
        return int(field.example)
    return field.example


def template_chunks(fmt: FileFormat) -> Iterator[bytes]:
    """The template as a file of `fmt`: header and example row (CSV), plus the required
    column marked bold with a `*` and a note, and the explanation sheet (xlsx)."""
    if fmt is FileFormat.CSV:
        # The CSV's header is plain; its example row is written as an export writes items.
        yield from csv_chunks([[[_example(f) for f in FIELDS]]])
        return
    book = XlsxStream(SHEETS)
    header = [f.label + (REQUIRED_MARK if f.required else "") for f in FIELDS]
    notes = {i: ("Required", REQUIRED_NOTE) for i, f in enumerate(FIELDS) if f.required}
    yield book.begin_sheet(SheetLayout(widths=WIDTHS, notes=notes))
    yield book.rows([header, [_example(f) for f in FIELDS]])
    yield book.end_sheet()
    yield book.begin_sheet(SheetLayout(widths=[12, 12, 9, 15, 32, 48, 60]))
    yield book.rows(field_rows())
    yield book.end_sheet()
    yield book.close()


def template_bytes(fmt: FileFormat) -> bytes:
    """The whole template (a few kilobytes)."""
    return b"".join(template_chunks(fmt))
