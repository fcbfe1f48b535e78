"""Finding the header row and mapping its cells to fields."""

from __future__ import annotations

import json

import pytest

from itemsheet.sheet.errors import MappingNeeded, SheetError
from itemsheet.sheet.fields import field_for_header, normalise_header
from itemsheet.sheet.header import (
    MappingChoice,
    SavedMapping,
    clip_keys,
    explicit_mapping,
    find_header,
    header_key,
)
from itemsheet.sheet.messages import KEY_CHARS
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


GERMAN = [["Artikelnummer", "Bezeichnung", "Preis", "Notiz"], ["A-1", "Apfel", "1.5", "x"]]


def test_an_explicit_mapping_names_the_columns_aliases_do_not_know() -> None:
    choice = MappingChoice(explicit_mapping({"Artikelnummer": "sku", "Bezeichnung": "name"}))
    header = find_header(grid_of(GERMAN).frame, choice=choice)
    assert header.columns == {"sku": "c0", "name": "c1"}
    assert header.source == "explicit"
    assert header.mapping == {
        "artikelnummer": "sku",
        "bezeichnung": "name",
        "preis": None,
        "notiz": None,
    }
    # Columns nobody mapped are still named as ignored.
    assert header.warnings == [
        "column 'Preis' is not an item field and was ignored",
        "column 'Notiz' is not an item field and was ignored",
    ]


def test_a_column_mapped_to_nothing_is_ignored_without_a_warning() -> None:
    rows = [["SKU", "Name", "Price"], ["A-1", "Apple", "2"]]
    choice = MappingChoice(explicit_mapping({"price": None}))
    header = find_header(grid_of(rows).frame, choice=choice)
    assert header.columns == {"sku": "c0", "name": "c1"}
    assert header.warnings == []


def test_a_saved_mapping_reads_a_sheet_with_the_same_headers_in_any_order_and_case() -> None:
    saved_for = grid_of([["artikelnummer", "PREIS", "bezeichnung", "notiz"]]).frame.row(0)
    saved = SavedMapping(
        {"artikelnummer": "sku", "bezeichnung": "name", "preis": "price", "notiz": None},
        saved_by="cli (ana)",
        saved_at="2026-11-30T10:00:00+00:00",
    )
    choice = MappingChoice(saved={header_key(list(saved_for)): saved})
    header = find_header(grid_of([["Title"], *GERMAN]).frame, choice=choice)
    assert header.index == 1
    assert header.columns == {"sku": "c0", "name": "c1", "price": "c2"}
    assert header.source == "saved"
    assert header.warnings == [
        "columns were mapped by the mapping saved for these headers by 'cli (ana)' on 2026-11-30"
    ]
    # An explicit mapping still wins over the saved one.
    mine = MappingChoice(explicit_mapping({"Preis": None}), choice.saved)
    assert "price" not in find_header(grid_of(GERMAN).frame, choice=mine).columns


def test_the_header_row_can_be_named_and_must_then_hold_the_sku() -> None:
    rows = [["SKU", "note"], ["x", "y"], ["SKU", "Price"], ["A-1", "3"]]
    grid = grid_of(rows)
    header = find_header(grid.frame, grid.rows, MappingChoice(header_row=3))
    assert (header.index, header.row, header.columns) == (2, 3, {"sku": "c0", "price": "c1"})
    with pytest.raises(MappingNeeded, match="row 2 has no SKU column") as caught:
        find_header(grid.frame, grid.rows, MappingChoice(header_row=2))
    assert [c["header"] for c in caught.value.columns] == ["x", "y"]
    with pytest.raises(SheetError, match="the sheet has no row 9"):
        find_header(grid.frame, grid.rows, MappingChoice(header_row=9))


def test_without_an_sku_the_likeliest_header_is_offered_with_sample_values() -> None:
    rows = [["Price list 2026"], *GERMAN, ["A-2", "Birne", "2", ""]]
    with pytest.raises(MappingNeeded) as caught:
        find_header(grid_of(rows).frame)
    assert caught.value.header_row == 2
    assert [(c["header"], c["field"], c["samples"]) for c in caught.value.columns] == [
        ("Artikelnummer", None, ["A-1", "A-2"]),
        ("Bezeichnung", None, ["Apfel", "Birne"]),
        ("Preis", None, ["1.5", "2"]),
        ("Notiz", None, ["x"]),
    ]


def test_two_columns_mapped_to_one_field_need_a_new_mapping() -> None:
    choice = MappingChoice(explicit_mapping({"Artikelnummer": "sku", "Notiz": "sku"}))
    with pytest.raises(MappingNeeded, match="'Artikelnummer' and 'Notiz' both map to sku"):
        find_header(grid_of(GERMAN).frame, choice=choice)


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ({"Preis": "cost"}, "the mapping of 'Preis' names 'cost', which is not a field"),
        ({"  ": "sku"}, "a mapping names an empty header"),
    ],
)
def test_a_mapping_naming_no_field_is_refused_in_one_sentence(
    given: dict[str, str | None], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        explicit_mapping(given)


def test_a_mapping_is_keyed_by_the_normalised_header_and_field_case_is_free() -> None:
    assert explicit_mapping({" Unit_Price* ": "PRICE", "Notiz": ""}) == {
        "unit price": "price",
        "notiz": None,
    }


LONG = [f"{i:04d}" + "h" * 2000 for i in range(3000)]


@pytest.mark.parametrize(
    "label",
    [
        "x" * 2000,
        "Unit Price" + " " * 300 + "!",
        "a" * 254 + " b",
        "a" * 254 + "*b",
        "a**",
        " *_* ",
    ],
)
def test_a_header_key_has_at_most_255_characters_and_normalising_it_again_keeps_it(
    label: str,
) -> None:
    key = normalise_header(label)
    assert len(key) <= KEY_CHARS
    # The page sends the key back as the mapping's header: it must name the same column.
    assert normalise_header(key) == key


def test_thousands_of_long_headers_keep_short_keys_in_the_columns_and_the_mapping() -> None:
    rows = [["SKU", *LONG], ["A-1", *(["v"] * len(LONG))]]
    choice = MappingChoice(explicit_mapping({LONG[0][:KEY_CHARS]: "name"}))
    header = find_header(grid_of(rows).frame, choice=choice)
    assert header.columns == {"sku": "c0", "name": "c1"}
    assert max(len(k) for k in header.mapping) == KEY_CHARS
    assert max(len(c["key"]) for c in header.described) == KEY_CHARS
    # 6.5 MB of column descriptions and 6 MB of mapping before keys were clipped.
    assert len(json.dumps(header.described)) < 1_300_000
    assert len(json.dumps(header.mapping)) < 900_000


def test_a_mapping_saved_with_long_keys_still_reads_its_sheet() -> None:
    rows = [["SKU", LONG[0]], ["A-1", "Apple"]]
    # As mappings were saved before keys were clipped: the whole header as the key.
    columns = clip_keys({"sku": "sku", LONG[0]: "name"})
    saved = SavedMapping(columns, saved_by="t", saved_at="2026-12-01")
    choice = MappingChoice(saved={header_key(rows[0]): saved})
    assert find_header(grid_of(rows).frame, choice=choice).columns == {"sku": "c0", "name": "c1"}


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (
            {"x" * 5_000_000: "sku"},
            "the mapping names a header of 5,000,000 characters; name a header by at most its"
            " first 255 characters, as the preview's key shows it",
        ),
        (
            {f"{i:05d}" + "h" * 250: None for i in range(300)},
            "the mapping is 78,901 bytes of JSON; the most is 65,536: map only the columns"
            " that need it",
        ),
    ],
)
def test_a_mapping_with_a_key_over_255_characters_or_over_64_kib_is_refused(
    given: dict[str, str | None], reason: str
) -> None:
    with pytest.raises(ValueError) as caught:
        explicit_mapping(given)
    assert str(caught.value) == reason
