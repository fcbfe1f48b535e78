"""Items written out in the shape an import reads back unchanged, as CSV or xlsx, a page
at a time.

Round trip: every field is written so that importing the file gives every row
`unchanged`. Keys and every text field are text (an xlsx string cell; in a CSV every cell
is text anyway), so `000123` and a 13-digit barcode stay as written. A price is its exact
decimal (`12.5`); in an xlsx it is a number cell when 15 significant digits hold it (a
spreadsheet's number reads back as the same decimal), else a text cell, which the
importer reads as written. A quantity is a number cell below 2**53, else text.

Formula guard: in the CSV every text goes through `itemsheet.downloads.csv_writer.guard_cell`, whose
`'` before a formula-like text the importer reads back off (`itemsheet.sheet.validate`), the
exact inverse, so `=SUM(A1)` is written `'=SUM(A1)` and read back `=SUM(A1)`, and `'=x`
goes out as `''=x` and comes back `'=x`. The xlsx needs no guard: a string cell is never
a formula, and a workbook's text is read as it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from db.item_pages import ItemFilter, item_page, written_skus
from db.models import JobSource
from db.session import session_scope
from itemsheet.downloads.csv_writer import GUARD_FIRST, GUARDED, CsvText
from itemsheet.downloads.xlsx_writer import Cell, Number, SheetLayout, XlsxStream
from itemsheet.jobs.views import JobConflict, load_job
from itemsheet.sheet.fields import FIELDS

PAGE_ROWS = 5000
# An IN list this long at most per query (well under SQLite's limit on parameters).
SKUS_PER_QUERY = 1000
# A double holds every decimal of at most 15 significant digits exactly enough to read
# back as the same decimal; whole numbers up to 2**53.
NUMBER_DIGITS = 15
EXACT_INTEGER = 2**53
HEADER = [f.label for f in FIELDS]
WIDTHS = [16, 32, 40, 18, 8, 12, 10, 16]


class FileFormat(StrEnum):
    """The formats a template or an export is written in."""

    XLSX = "xlsx"
    CSV = "csv"


MEDIA_TYPES = {
    FileFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    FileFormat.CSV: "text/csv; charset=utf-8",
}


def check_import_export(session: Session, job_id: uuid.UUID) -> None:
    """Refuse (`JobConflict`, one sentence) an export of what job `job_id` wrote when that
    is not known; `JobNotFound` for an unknown id."""
    job = load_job(session, job_id)
    if job.source is JobSource.UNDO:
        raise JobConflict(
            "this job is an undo; export by the import it undid, or by --changed-since"
        )
    if job.dry_run:
        raise JobConflict("a dry run wrote no items, so there is nothing of it to export")
    if job.undo_removed_at is not None:
        raise JobConflict(
            "the record of the items this import wrote was removed"
            f" {job.undo_removed_at:%Y-%m-%d} (IMPORTER_UNDO_DAYS); export by changed_since"
            " instead"
        )


def iter_item_pages(
    chosen: ItemFilter, *, job_id: uuid.UUID | None = None, page_rows: int = PAGE_ROWS
) -> Iterator[Sequence[Sequence[Any]]]:
    """The chosen items a page at a time, each page read in a short transaction of its own.

    All items: in SKU order, by key. Those of an import (`job_id`): the items, as they are
    now and where they still exist, that its committed batches created or updated, batch
    after batch, in SKU order within each (its before-images name them; see
    `check_import_export` for when they are gone).
    """
    if job_id is None:
        after: str | None = None
        while True:
            with session_scope(write=False) as session:
                page = item_page(session, chosen, after=after, limit=page_rows)
            if page:
                yield page
            if len(page) < page_rows:
                return
            after = page[-1][0]
    batch = 0
    while True:
        pages = []
        with session_scope(write=False) as session:
            found = written_skus(session, job_id, after_batch=batch)
            if found is None:
                return
            batch, skus = found
            for start in range(0, len(skus), SKUS_PER_QUERY):
                chunk = skus[start : start + SKUS_PER_QUERY]
                pages.append(item_page(session, chosen, after=None, limit=len(chunk), skus=chunk))
        yield from (page for page in pages if page)


def number_text(value: Decimal | float | int) -> str:
    """A stored number as its exact decimal, without trailing zeros or an exponent (`12.5`).

    SQLite stores a double: its shortest repr reads back as the same double (a price is
    below 10**14 and a multiple of 0.0001, so never in exponent form).
    """
    if type(value) is float:
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, int):
        return str(value)
    assert isinstance(value, Decimal)
    return format(value.normalize(), "f") if value else "0"


def _csv_row(row: Sequence[Any]) -> list[str]:
    # `guard_cell` inline, not a call per cell: this runs for every cell of a million rows.
    cells = []
    for value in row:
        if value is None:
            cells.append("")
        elif type(value) is str:
            guarded = value[:1] in GUARD_FIRST and GUARDED.match(value)
            cells.append(f"'{value}" if guarded else value)
        else:
            cells.append(number_text(value))
    return cells


def csv_chunks(pages: Iterable[Sequence[Sequence[Any]]]) -> Iterator[bytes]:
    """The pages as CSV (`itemsheet.downloads.csv_writer.CsvText`), the header first."""
    out = CsvText()
    yield out.rows([HEADER]).encode("utf-8")
    for page in pages:
        yield out.rows(map(_csv_row, page)).encode("utf-8")


def _number(value: Decimal | float | int) -> Cell:
    text = number_text(value)
    digits = len(text) - ("." in text)
    return Number(text) if digits <= NUMBER_DIGITS else text


def _xlsx_row(row: Sequence[Any]) -> list[Cell]:
    sku, name, description, category, unit, price, quantity, barcode = row
    if quantity is not None and abs(quantity) >= EXACT_INTEGER:
        quantity = str(quantity)
    price = None if price is None else _number(price)
    return [sku, name, description, category, unit, price, quantity, barcode]


def xlsx_chunks(
    pages: Iterable[Sequence[Sequence[Any]]], *, sheet: str = "Items"
) -> Iterator[bytes]:
    """The pages as an xlsx of one sheet, `sheet`, its bold header frozen."""
    book = XlsxStream([sheet])
    yield book.begin_sheet(SheetLayout(widths=WIDTHS))
    yield book.rows([HEADER])
    for page in pages:
        yield book.rows(map(_xlsx_row, page))
    yield book.end_sheet()
    yield book.close()


def file_chunks(fmt: FileFormat, pages: Iterable[Sequence[Sequence[Any]]]) -> Iterator[bytes]:
    """Pages of items as a file of `fmt`, chunk by chunk."""
    return csv_chunks(pages) if fmt is FileFormat.CSV else xlsx_chunks(pages)


def export_chunks(
    fmt: FileFormat, chosen: ItemFilter, *, job_id: uuid.UUID | None = None
) -> Iterator[bytes]:
    """The chosen items as a file of `fmt`, chunk by chunk (see `iter_item_pages`)."""
    return file_chunks(fmt, iter_item_pages(chosen, job_id=job_id))
