"""Normalise and validate every data row with polars expressions (no per-row Python)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from itemsheet.sheet.fields import FIELDS_BY_NAME, Kind
from itemsheet.sheet.header import Header
from itemsheet.sheet.numbers import PRICE_DTYPE as PRICE_DTYPE
from itemsheet.sheet.numbers import CellTypes, NumberReading, read_numbers
from itemsheet.sheet.reader import Grid
from itemsheet.sheet.text import How

VALUE_MAX_CHARS = 200
ERROR_COLUMNS = ("error_column", "error_value", "error_message")

_CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]"
NUMBER_KINDS = (Kind.PRICE, Kind.QUANTITY)


@dataclass(frozen=True)
class Validated:
    """The data rows of a sheet, in order, each typed and either valid or with its error.

    `frame` columns: `row`, one column per present field, then `error_column`,
    `error_value`, `error_message` (all null for a valid row).
    """

    frame: pl.DataFrame
    fields: list[str]
    numbers: NumberReading | None = None


_STRIPPABLE = "".join(map(chr, [*range(0x21), 0x7F]))
# A text file's cell that a CSV export guarded against formulas: `'` before `'`s and one of
# `=+-@`, tab or CR (`itemsheet.downloads.csv_writer.guard_cell`); read without that first `'`.
_GUARDED_CELL = r"^'('*[=+\-@\t\r])"
_DATE_TEXT = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"


def _needs(frame: pl.DataFrame, columns: list[str], *, spreadsheet: bool) -> dict[str, set[str]]:
    """Which of the costlier rewrites of `_clean_text` each column needs, found for all
    columns in one pass that polars spreads over the cores: "control" (it holds control
    characters), "guarded" (a text file's cell guarded against formulas) and "date" (a
    spreadsheet's date cell as fastexcel renders it)."""
    tests = {"control": _CONTROL}
    tests.update({"date": _DATE_TEXT} if spreadsheet else {"guarded": r"^\s*'+[=+\-@\t\r]"})
    asked = [(c, need) for c in dict.fromkeys(columns) for need in tests]
    found = frame.select(
        pl.col(c).str.contains(tests[need]).any().alias(str(k)) for k, (c, need) in enumerate(asked)
    ).row(0)
    needs: dict[str, set[str]] = {c: set() for c in columns}
    for (column, need), hit in zip(asked, found, strict=True):
        if hit:
            needs[column].add(need)
    return needs


def _clean_text(column: str, needs: set[str]) -> pl.Expr:
    """Trimmed text of a column with control characters dropped; empty text is null.

    The costlier rewrites only run on columns that need them (`_needs`), which keeps a
    clean sheet fast.
    """
    text = pl.col(column)
    if "control" in needs:
        text = text.str.replace_all(_CONTROL, "")
    text = text.str.strip_chars()
    if "guarded" in needs:
        text = text.str.replace(_GUARDED_CELL, "$1").str.strip_chars()
    if "date" in needs:
        # fastexcel renders date cells as "YYYY-MM-DD HH:MM:SS"; the contract wants ISO 8601.
        text = text.str.replace(r"^(\d{4}-\d{2}-\d{2}) 00:00:00$", "$1").str.replace(
            r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$", "${1}T${2}"
        )
    return pl.when(text.str.len_bytes() > 0).then(text)


def _field_checks(field: str, text: pl.Expr, code: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, error message or null) for one field; a number field's were read
    before (`read_numbers`)."""
    spec = FIELDS_BY_NAME[field]
    error_value = pl.format("{} holds the error value {}", pl.lit(field), code)
    if spec.kind in NUMBER_KINDS:
        message = pl.col(f"nummsg_{field}")
        return pl.col(f"num_{field}"), pl.when(code.is_not_null()).then(error_value).otherwise(
            message
        )
    assert spec.max_len is not None
    message = (
        pl.when(code.is_not_null())
        .then(error_value)
        .when(text.is_null())
        .then(pl.lit(f"{field} is required") if spec.required else None)
        .when(text.str.len_chars() > spec.max_len)
        .then(pl.lit(f"{field} is longer than {spec.max_len} characters"))
    )
    return text, message


def _cell_types(grid: Grid, header: Header) -> CellTypes | None:
    """Which cells of number fields are a workbook's number cells, by frame index."""
    numeric = grid.numeric_cells
    if numeric is None:
        return None

    def types(fields: list[str]) -> pl.DataFrame:
        columns = [int(header.columns[f][1:]) for f in fields]
        flags = numeric(columns)
        return flags.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("index"),
            *(pl.col(f"n{c}").alias(f"cell_{f}") for f, c in zip(fields, columns, strict=True)),
        )

    return types


def _error_codes(grid: Grid, header: Header) -> pl.DataFrame:
    """One column `code_<field>` per field with the error value of that cell, by frame index."""
    positions = {int(column[1:]): field for field, column in header.columns.items()}
    cells = grid.error_cells.filter(pl.col("col").is_in(list(positions)))
    wide = pl.DataFrame({"index": pl.Series([], dtype=pl.Int64)})
    for col, field in positions.items():
        per_field = cells.filter(pl.col("col") == col).select(
            "index", pl.col("code").alias(f"code_{field}")
        )
        wide = wide.join(per_field, on="index", how="full", coalesce=True)
    return wide


# A cell that begins with a character neither stripping removes holds something.
_SURELY_HOLDS = r"^[^\x00-\x20\x7F\s]"


def _non_empty(data: pl.DataFrame, grid: Grid, header: Header) -> pl.Series:
    """Which rows of `data` hold something. Control characters alone do not make a row
    non-empty, nor does a rejected-rows file's Error cell (a note row that holds nothing
    else is not a data row); an error cell does.

    A cell is stripped of both (and of white space) only in the rows where no cell begins
    with a character that is neither: nearly always none, and the stripping of every cell
    was a third of validating a clean sheet.
    """
    columns = [c for c in grid.frame.columns if c not in header.notes]
    surely = data.select(
        pl.any_horizontal(pl.col(c).str.contains(_SURELY_HOLDS) for c in columns).fill_null(False)
    ).to_series()
    if surely.all():
        return surely
    error_rows = grid.error_cells.get_column("index").unique().implode()
    stripped = pl.any_horizontal(
        pl.col(c).str.strip_chars(_STRIPPABLE).str.strip_chars().str.len_chars() > 0
        for c in columns
    ).fill_null(False) | pl.col("index").is_in(error_rows)
    doubtful = (~surely).arg_true()
    return surely.scatter(doubtful, data[doubtful].select(stripped).to_series())


def validate(
    grid: Grid, header: Header, *, decimal: str | None = None, decimal_how: How = How.GIVEN
) -> Validated:
    """Type every non-empty data row below the header and attach its first error, if any.

    `decimal` is the decimal mark a person chose for numbers written as text (`decimal_how`
    says how); without one, the file's values decide it.
    """
    fields = list(header.columns)
    data = grid.frame.with_columns(
        grid.rows.alias("row"), pl.int_range(pl.len(), dtype=pl.Int64).alias("index")
    ).slice(header.index + 1)
    data = data.filter(_non_empty(data, grid, header))
    data = data.join(_error_codes(grid, header), on="index", how="left")

    # Clean each mapped cell once; every check below reads the cleaned column.
    needs = _needs(data, list(header.columns.values()), spreadsheet=grid.spreadsheet)
    data = data.with_columns(
        _clean_text(header.columns[f], needs[header.columns[f]]).alias(f"text_{f}") for f in fields
    )
    kinds = {f: FIELDS_BY_NAME[f].kind for f in fields if FIELDS_BY_NAME[f].kind in NUMBER_KINDS}
    data, numbers = read_numbers(
        data,
        kinds,
        given=decimal,
        given_how=decimal_how,
        spreadsheet=grid.spreadsheet,
        cell_types=_cell_types(grid, header),
    )
    typed: list[pl.Expr] = []
    messages: list[pl.Expr] = []
    values: list[pl.Expr] = []
    for field in fields:
        text = pl.col(f"text_{field}")
        code = (
            pl.col(f"code_{field}") if f"code_{field}" in data.columns else pl.lit(None, pl.String)
        )
        value, message = _field_checks(field, text, code)
        typed.append(value.alias(field))
        messages.append(message.alias(f"msg_{field}"))
        values.append(pl.coalesce(code, text).alias(f"raw_{field}"))
    data = data.select("row", *typed, *messages, *values)

    # A later row with an SKU seen before is a duplicate; the first occurrence is kept.
    first_row = pl.col("row").min().over("sku")
    duplicate = pl.col("msg_sku").is_null() & (pl.col("row") != first_row)
    data = data.with_columns(
        pl.when(duplicate)
        .then(pl.format("duplicate SKU '{}' (first on row {})", pl.col("sku"), first_row))
        .otherwise(pl.col("msg_sku"))
        .alias("msg_sku")
    )
    column_chain: pl.Expr | None = None
    value_chain: pl.Expr | None = None
    for field in fields:
        failing = pl.col(f"msg_{field}").is_not_null()
        if column_chain is None or value_chain is None:
            column_chain = pl.when(failing).then(pl.lit(field))
            value_chain = pl.when(failing).then(pl.col(f"raw_{field}"))
        else:
            column_chain = column_chain.when(failing).then(pl.lit(field))  # type: ignore[attr-defined]
            value_chain = value_chain.when(failing).then(pl.col(f"raw_{field}"))  # type: ignore[attr-defined]
    assert column_chain is not None and value_chain is not None
    message = pl.concat_str([pl.col(f"msg_{f}") for f in fields], separator="; ", ignore_nulls=True)
    data = data.with_columns(
        column_chain.alias("error_column"),
        value_chain.str.slice(0, VALUE_MAX_CHARS).alias("error_value"),
        pl.when(message.str.len_chars() > 0).then(message).alias("error_message"),
    )
    return Validated(data.select("row", *fields, *ERROR_COLUMNS), fields, numbers)


def unnamed(rows: pl.DataFrame) -> pl.DataFrame:
    """The valid rows that carry no name: all of them when the sheet has no Name column."""
    valid = rows.filter(pl.col("error_message").is_null())
    return valid.filter(pl.col("name").is_null()) if "name" in rows.columns else valid


def name_errors(rows: pl.DataFrame, skus: frozenset[str]) -> pl.DataFrame:
    """Error records (`row` and the error columns) for the rows of new SKUs `skus`, which
    carry no name and so cannot create their item."""
    return rows.filter(pl.col("sku").is_in(list(skus))).select(
        "row",
        pl.lit("name", pl.String).alias("error_column"),
        pl.lit(None, pl.String).alias("error_value"),
        pl.format("name is required to create item '{}'", pl.col("sku")).alias("error_message"),
    )


def mode_skips(rows: pl.DataFrame, skus: frozenset[str], mode: str) -> pl.DataFrame:
    """Records (`row`, the error columns and `skipped`) for the rows of `skus`, which the
    import's `mode` left alone: a stored item in create_only, a new one in update_only."""
    why = (
        "item '{}' exists and the mode is create_only; it was left alone"
        if mode == "create_only"
        else "item '{}' does not exist and the mode is update_only; it was not created"
    )
    return rows.filter(pl.col("sku").is_in(list(skus))).select(
        "row",
        pl.lit("sku", pl.String).alias("error_column"),
        pl.col("sku").str.slice(0, VALUE_MAX_CHARS).alias("error_value"),
        pl.format(why, pl.col("sku")).alias("error_message"),
        pl.lit(True).alias("skipped"),
    )
