"""Split a batch of valid rows into new, changed and unchanged items against what is stored."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class BatchDiff:
    """What a batch does to the catalogue."""

    created: pl.DataFrame
    updated: pl.DataFrame
    unchanged: int


def diff_batch(batch: pl.DataFrame, stored: pl.DataFrame, fields: list[str]) -> BatchDiff:
    """Compare `batch` (sku + fields) with `stored` (the same columns, existing SKUs only).

    A row is unchanged when every imported field equals the stored value, nulls included;
    only the fields present in the sheet are compared, as only they would be written.
    """
    values = [f for f in fields if f != "sku"]
    joined = batch.join(
        stored.rename({f: f"stored_{f}" for f in values}).with_columns(
            pl.lit(True).alias("_exists")
        ),
        on="sku",
        how="left",
    )
    exists = pl.col("_exists").fill_null(False)
    same = (
        pl.all_horizontal(pl.col(f).eq_missing(pl.col(f"stored_{f}")) for f in values)
        if values
        else pl.lit(True)
    )
    joined = joined.with_columns(exists.alias("_exists"), same.alias("_same"))
    columns = ["sku", *values]
    created = joined.filter(~pl.col("_exists")).select(columns)
    updated = joined.filter(pl.col("_exists") & ~pl.col("_same")).select(columns)
    unchanged = joined.filter(pl.col("_exists") & pl.col("_same")).height
    return BatchDiff(created, updated, unchanged)
