"""The CSV export's formula guard and the importer's reading of it are exact inverses;
a workbook's text is read as it is."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itemsheet.downloads.csv_writer import guard_cell
from itemsheet.sheet.header import find_header
from itemsheet.sheet.validate import validate
from tests.itemsheet.grids import grid_of

FORMULA_STARTS = ["=", "+", "-", "@", "'", "''"]


def read_back(cell: str, *, spreadsheet: bool) -> str | None:
    grid = grid_of([["SKU", "Name"], ["A-1", cell]], spreadsheet=spreadsheet)
    [row] = validate(grid, find_header(grid.frame)).frame.to_dicts()
    return row["name"]


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+49 30", "'+49 30"),
        ("-5% off", "'-5% off"),
        ("@home", "'@home"),
        ("'=quoted", "''=quoted"),
        ("''+x", "'''+x"),
        ("'plain", "'plain"),
        ("don't", "don't"),
        ("plain", "plain"),
    ],
)
def test_the_guard_is_written_where_a_spreadsheet_would_run_a_formula_and_read_back(
    text: str, written: str
) -> None:
    assert guard_cell(text) == written
    assert read_back(written, spreadsheet=False) == text


def test_a_workbook_cell_keeps_its_quote() -> None:
    # A string cell of a workbook is never a formula, so nothing there is a guard.
    assert read_back("'=SUM(A1)", spreadsheet=True) == "'=SUM(A1)"


@given(
    st.builds(
        lambda start, rest: start + rest,
        st.sampled_from(["", *FORMULA_STARTS]),
        st.text(
            st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"]),
            max_size=8,
        ),
    )
)
def test_any_trimmed_text_comes_back_through_the_guard(text: str) -> None:
    text = text.strip()
    if not text:
        return
    assert read_back(guard_cell(text), spreadsheet=False) == text
