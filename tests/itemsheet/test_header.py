"""Finding the header row and mapping its cells to fields."""

from __future__ import annotations

import pytest

from itemsheet.errors import SheetError
from itemsheet.fields import field_for_header
from itemsheet.header import find_header
from tests.itemsheet.grids import grid_of


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("SKU", "sku"),
        (" sku* ", "sku"),
        ("Item No.", "sku"),
        ("item_number", "sku"),
        ("Part-Number", "sku"),
        ("PRODUCT CODE", "sku"),
        ("Unit_Price", "price"),
        ("unit price", "price"),
        ("UNIT-PRICE", "price"),
        ("Sales.Price", "price"),
        ("On hand", "quantity"),
        ("QTY", "quantity"),
        ("Stock", "quantity"),
        ("UoM", "unit"),
        ("unit of measure", "unit"),
        ("GTIN", "barcode"),
        ("Desc", "description"),
        ("Item Group", "category"),
        ("Title", "name"),
        ("Colour", None),
        ("", None),
    ],
)
def test_header_spellings_map_to_fields(label: str, field: str | None) -> None:
    assert field_for_header(label) == field


def test_header_is_found_below_titles_and_blank_rows() -> None:
    grid = grid_of(
        [["Price list 2026"], [None], ["Item code", "Item Name", "Qty"], ["A", "B", "1"]]
    )
    header = find_header(grid.frame)
    assert header.index == 2
    assert header.columns == {"sku": "c0", "name": "c1", "quantity": "c2"}


def test_no_sku_column_in_the_first_20_rows_fails() -> None:
    rows: list[list[str | None]] = [["note"]] * 20 + [["SKU", "Name"]]
    with pytest.raises(SheetError, match="no header row with an SKU column"):
        find_header(grid_of(rows).frame)


def test_a_header_of_sku_and_one_field_is_enough() -> None:
    header = find_header(grid_of([["Price", "SKU"], ["1", "A"]]).frame)
    assert header.columns == {"sku": "c1", "price": "c0"}


def test_two_headers_for_one_field_are_both_named() -> None:
    with pytest.raises(SheetError, match="'Qty' and 'Stock' both map to quantity"):
        find_header(grid_of([["SKU", "Name", "Qty", "Stock"]]).frame)


def test_unknown_columns_become_warnings() -> None:
    header = find_header(grid_of([["SKU", "Name", "Colour", None, "Weight"]]).frame)
    assert header.warnings == [
        "column 'Colour' is not an item field and was ignored",
        "column 'Weight' is not an item field and was ignored",
    ]
