"""Splitting a batch into created, updated and unchanged items."""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from itemsheet.diff import diff_batch

PRICE = pl.Decimal(18, 4)


def frame(rows: list[tuple[str, str | None, Decimal | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"sku": pl.String, "name": pl.String, "price": PRICE}, orient="row"
    )


def test_new_changed_and_equal_rows_are_told_apart() -> None:
    batch = frame([("A", "a", Decimal("1.5")), ("B", "b", Decimal("2")), ("C", "c", None)])
    stored = frame([("B", "b", Decimal("2.0000")), ("C", "c", Decimal("3"))])
    diff = diff_batch(batch, stored, ["sku", "name", "price"])
    assert diff.created.get_column("sku").to_list() == ["A"]
    assert diff.updated.to_dicts() == [{"sku": "C", "name": "c", "price": None}]
    assert diff.unchanged == 1


def test_only_present_fields_are_compared() -> None:
    batch = pl.DataFrame({"sku": ["B"], "name": ["b"]})
    stored = pl.DataFrame({"sku": ["B"], "name": ["b"]})
    assert diff_batch(batch, stored, ["sku", "name"]).unchanged == 1


def test_null_equals_null_but_not_a_value() -> None:
    batch = frame([("A", None, None), ("B", "x", None)])
    stored = frame([("A", None, None), ("B", None, None)])
    diff = diff_batch(batch, stored, ["sku", "name", "price"])
    assert diff.unchanged == 1
    assert diff.updated.get_column("sku").to_list() == ["B"]
