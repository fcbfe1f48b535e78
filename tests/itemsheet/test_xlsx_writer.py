"""The streaming xlsx writer, read back by openpyxl: the cells the rejected rows need
besides an export's (floats as the numbers they are, a value no number cell holds, an
error code as its text, more columns than an export has)."""

from __future__ import annotations

import io
import math

import openpyxl

from itemsheet.downloads.xlsx_writer import Cell, SheetLayout, XlsxStream


def written(rows: list[list[Cell]]) -> list[list[object]]:
    book = XlsxStream(["Rows"])
    data = b"".join(
        [book.begin_sheet(SheetLayout()), book.rows(rows), book.end_sheet(), book.close()]
    )
    sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    return [list(r) for r in sheet.iter_rows(values_only=True)]


def test_floats_are_number_cells_that_read_back_as_the_same_double() -> None:
    values: list[Cell] = [0.1, 1.5, -2.25, 1e-7, 12345678.901234567, 2.0**60]
    [row] = written([values])
    assert row == values
    assert all(type(v) in (float, int) for v in row)


def test_a_float_no_number_cell_holds_is_written_as_its_text() -> None:
    [row] = written([[math.inf, -math.inf, math.nan, "#N/A"]])
    assert row == ["inf", "-inf", "nan", "#N/A"]


def test_a_row_wider_than_the_export_keeps_every_column() -> None:
    wide: list[Cell] = [f"v{i}" for i in range(100)]
    [row] = written([wide])
    assert row == wide
