"""Cell normalisation and row validation, on small in-memory grids."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from itemsheet.sheet.header import find_header
from itemsheet.sheet.validate import name_errors, unnamed, validate
from tests.itemsheet.grids import grid_of


def check(rows: list[list[str | None]], **kwargs: Any) -> list[dict[str, Any]]:
    grid = grid_of(rows, **kwargs)
    return validate(grid, find_header(grid.frame)).frame.to_dicts()


def one(
    field: str, text: str | None, *, header: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    label = header or field.title()
    [row] = check([["SKU", "Name", label], ["A-1", "Thing", text]], **kwargs)
    return row


def test_text_is_trimmed_and_whitespace_only_is_empty() -> None:
    row = one("description", "  hello \t")
    assert row["description"] == "hello"
    assert one("description", " \u00a0 ")["description"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.5", "12.5000"),
        ("1,234.50", "1234.5000"),
        (" 7 ", "7.0000"),
        ("0", "0.0000"),
        ("1.23456", "1.2346"),
        (".5", "0.5000"),
    ],
)
def test_price_accepts_numbers_and_number_text(text: str, expected: str) -> None:
    row = one("price", text)
    assert row["error_message"] is None
    assert row["price"] == Decimal(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "price must not be negative"),
        ("abc", "price is not a number"),
        ("12,34 kg", "price is not a number"),
        ("€5 $", "price is not a number"),
        ("1,2,3", "price is not a number"),
        ("1" * 20, "price is too large"),
    ],
)
def test_bad_prices_are_row_errors(text: str, message: str) -> None:
    row = one("price", text)
    assert (row["error_column"], row["error_value"], row["error_message"]) == (
        "price",
        text,
        message,
    )
    assert row["price"] is None


@pytest.mark.parametrize(("text", "value"), [("12", 12), ("12.0", 12), (" 7 ", 7), ("1,000", 1000)])
def test_quantity_accepts_whole_numbers(text: str, value: int) -> None:
    row = one("quantity", text, header="Qty")
    assert (row["quantity"], row["error_message"]) == (value, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2.5", "quantity must be a whole number"),
        ("-3", "quantity must not be negative"),
        ("many", "quantity must be a whole number"),
        ("9" * 20, "quantity is too large"),
    ],
)
def test_bad_quantities_are_row_errors(text: str, message: str) -> None:
    assert one("quantity", text, header="Qty")["error_message"] == message


def test_dates_in_text_columns_become_iso_8601() -> None:
    assert one("description", "2024-01-31 00:00:00")["description"] == "2024-01-31"
    assert one("description", "2024-01-31 10:30:00")["description"] == "2024-01-31T10:30:00"


def test_csv_text_that_looks_like_a_date_is_left_alone() -> None:
    row = one("description", "2024-01-31 00:00:00", spreadsheet=False)
    assert row["description"] == "2024-01-31 00:00:00"


def test_leading_zeros_and_long_digit_strings_are_kept() -> None:
    rows = check([["SKU", "Name", "EAN"], ["000123", "A", "5901234123457"]])
    assert (rows[0]["sku"], rows[0]["barcode"]) == ("000123", "5901234123457")


def test_control_characters_are_dropped_from_text() -> None:
    assert one("description", "a\x00b\x07c\nd")["description"] == "abc\nd"


@pytest.mark.parametrize(
    ("field", "limit"), [("sku", 64), ("name", 255), ("unit", 20), ("barcode", 32)]
)
def test_text_longer_than_its_limit_is_a_row_error(field: str, limit: int) -> None:
    rows: list[list[str | None]] = [["SKU", "Name", "Unit", "Barcode"], ["A", "N", "u", "b"]]
    column = ["sku", "name", "unit", "barcode"].index(field)
    rows[1][column] = "x" * (limit + 1)
    [row] = check(rows)
    assert row["error_column"] == field
    assert row["error_message"] == f"{field} is longer than {limit} characters"
    rows[1][column] = "x" * limit
    assert check(rows)[0]["error_message"] is None


def test_a_missing_sku_is_a_row_error_and_a_missing_name_is_left_to_the_writer() -> None:
    # Whether an empty name fails depends on the stored items: only a new SKU needs one.
    rows = check([["SKU", "Name"], [None, "No sku"], ["B", "  "]])
    assert [(r["row"], r["error_column"], r["error_message"], r["name"]) for r in rows] == [
        (2, "sku", "sku is required", "No sku"),
        (3, None, None, None),
    ]


def test_unnamed_rows_are_the_valid_ones_without_a_name_or_all_without_a_name_column() -> None:
    # Row C has no name either, but it fails on its quantity already.
    grid = grid_of([["SKU", "Name", "Qty"], ["A", "a", "1"], ["B", None, "2"], ["C", None, "x"]])
    assert unnamed(validate(grid, find_header(grid.frame)).frame)["sku"].to_list() == ["B"]
    grid = grid_of([["SKU", "Price"], ["A", "1"], ["B", "-1"]])
    assert unnamed(validate(grid, find_header(grid.frame)).frame)["sku"].to_list() == ["A"]


def test_name_errors_use_the_contract_message_and_keep_row_numbers() -> None:
    grid = grid_of([["SKU", "Price"], ["A", "1"], ["B", "2"], ["C", "3"]])
    frame = validate(grid, find_header(grid.frame)).frame
    errors = name_errors(frame, frozenset({"C", "A"})).sort("row").to_dicts()
    assert errors == [
        {
            "row": 2,
            "error_column": "name",
            "error_value": None,
            "error_message": "name is required to create item 'A'",
        },
        {
            "row": 4,
            "error_column": "name",
            "error_value": None,
            "error_message": "name is required to create item 'C'",
        },
    ]


def test_error_cells_in_mapped_columns_name_the_error_value() -> None:
    rows = check(
        [["SKU", "Name", "Price", "Notes"], ["A", "x", None, None], ["B", "y", "1", None]],
        errors=[(1, 2, "#DIV/0!"), (2, 3, "#N/A")],
    )
    assert rows[0]["error_column"] == "price"
    assert rows[0]["error_value"] == "#DIV/0!"
    assert "#DIV/0!" in rows[0]["error_message"]
    assert rows[1]["error_message"] is None  # an error in an ignored column does not matter


def test_fully_empty_rows_are_skipped_and_row_numbers_are_the_sheets() -> None:
    rows = check([["Title"], [], ["SKU", "Name"], ["A", "a"], [None, "  "], [], ["B", "b"]])
    assert [r["row"] for r in rows] == [4, 7]


def test_a_row_is_empty_when_stripping_leaves_nothing_in_any_cell() -> None:
    """Cells that begin with white space or control characters are stripped to be judged:
    what is left decides, in rows of every kind of cell beside them."""
    rows = check(
        [
            ["SKU", "Name"],
            ["\x01 A", None],  # 2: holds "A"
            ["\x01\x02", " \u3000 "],  # 3: control characters and spaces only
            [None, "\u3000x\x7f"],  # 4: holds "x"
            ["\t", "\x00"],  # 5: nothing
            ["B", "b"],  # 6
        ]
    )
    assert [r["row"] for r in rows] == [2, 4, 6]


def test_a_row_holding_only_an_error_value_is_not_empty() -> None:
    rows = check([["SKU", "Name"], [None, None]], errors=[(1, 1, "#REF!")])
    assert [r["row"] for r in rows] == [2]


def test_later_duplicates_are_row_errors_naming_the_first_row() -> None:
    rows = check([["SKU", "Name"], ["A", "1"], ["B", "2"], ["A", "3"], ["A", "4"]])
    assert [r["error_message"] for r in rows] == [
        None,
        None,
        "duplicate SKU 'A' (first on row 2)",
        "duplicate SKU 'A' (first on row 2)",
    ]


def test_sku_match_is_case_sensitive_and_trimmed() -> None:
    rows = check([["SKU", "Name"], ["abc", "1"], ["ABC", "2"], [" abc ", "3"]])
    assert [r["error_message"] for r in rows] == [
        None,
        None,
        "duplicate SKU 'abc' (first on row 2)",
    ]


def test_several_problems_in_one_row_make_one_record_listing_all() -> None:
    [row] = check([["SKU", "Name", "Price", "Qty"], ["A", "a", "-2", "x"]])
    assert row["error_column"] == "price"
    assert row["error_value"] == "-2"
    assert row["error_message"] == "price must not be negative; quantity must be a whole number"


def test_error_value_is_cut_at_200_characters() -> None:
    [row] = check([["SKU", "Name"], ["A", "n" * 300]])
    assert row["error_value"] == "n" * 200


def test_only_present_columns_are_in_the_result() -> None:
    grid = grid_of([["SKU", "Name", "Qty"], ["A", "a", "1"]])
    assert validate(grid, find_header(grid.frame)).fields == ["sku", "name", "quantity"]
