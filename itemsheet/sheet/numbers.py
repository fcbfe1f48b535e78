"""Numbers written by people: the decimal mark a file uses, and each price and quantity
read with it (vectorised: polars expressions, no per-row Python).

A value may carry group separators, a decimal mark `,` or `.`, a leading `+` and (prices)
a currency sign or ISO code. The decimal mark is decided once per file from every value
that can be read only one way (`9,99`, `1.234,56` say `,`; `9.99`, `1,234.50` say `.`);
`1,234` and `1.000` decide nothing and are read with the mark decided. A number cell of a
workbook is a number already: it neither votes nor is read with the file's mark.

The work is done once per distinct value of a column, with how often it occurs, and
joined back to the rows: a catalogue repeats its prices and quantities, so a million
rows are a few thousand values to read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from itemsheet.sheet.fields import Kind
from itemsheet.sheet.messages import quoted
from itemsheet.sheet.text import How

PRICE_DTYPE = pl.Decimal(18, 4)
DECIMALS = (".", ",")
FORMAT_SAMPLE = {".": "1,234.56", ",": "1.234,56"}
# Group separators besides `.` and `,`: apostrophes (Swiss), spaces of every width.
_OTHER_GROUPS = ("'", "\u2019", " ", "\u00a0", "\u202f", "\u2009")
_SPACE = "[ \\t\\x{00A0}\\x{202F}\\x{2009}]"
_CURRENCY = r"(?:\p{Sc}|[A-Z]{3})"
_CURRENCY_PREFIX = f"^({_CURRENCY}){_SPACE}*"
_CURRENCY_SUFFIX = f"{_SPACE}*({_CURRENCY})$"
# How a number cell of a workbook reads as text (fastexcel writes no grouping and no
# trailing zeros).
CELL_NUMBER = r"^-?[0-9]+(?:\.[0-9]+)?$"
_AMBIGUOUS_CELL = r"^[1-9][0-9]{0,2}\.[0-9]{3}$"
_SYMBOL_CODES = {
    "€": "EUR",
    "$": "USD",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "₽": "RUB",
    "₩": "KRW",
    "₺": "TRY",
    "₪": "ILS",
    "₴": "UAH",
    "₫": "VND",
    "₱": "PHP",
    "฿": "THB",
    "₦": "NGN",
}


def _char(c: str) -> str:
    return f"\\x{{{ord(c):04X}}}"


def _pattern(mark: str) -> str:
    """A whole unsigned number whose decimal mark is `mark`: digits, optionally grouped
    in threes by one separator (the other mark, an apostrophe or a space), then a
    fraction; or a bare fraction (`,5`)."""
    groups = [g for g in (*DECIMALS, *_OTHER_GROUPS) if g != mark]
    grouped = "|".join(f"[1-9][0-9]{{0,2}}(?:{_char(g)}[0-9]{{3}})+" for g in groups)
    m = _char(mark)
    return f"^(?:(?:[0-9]+|{grouped})(?:{m}[0-9]*)?|{m}[0-9]+)$"


_VALID = {mark: _pattern(mark) for mark in DECIMALS}
_STRIP = {
    mark: "[" + "".join(_char(g) for g in DECIMALS + _OTHER_GROUPS if g != mark) + "]"
    for mark in DECIMALS
}


@dataclass(frozen=True)
class NumberReading:
    """The decimal mark numbers written as text were read with, and why."""

    decimal: str
    how: How
    deciders: int = 0
    example: str | None = None
    ambiguous: int = 0
    ambiguous_example: str | None = None

    def warnings(self) -> list[str]:
        """What a person should know: a `,` mark, or a guess among ambiguous values."""
        found: list[str] = []
        if self.how is How.DEFAULT and self.ambiguous:
            more = f" and {self.ambiguous - 1:,} more values were" if self.ambiguous > 1 else " was"
            found.append(
                f"{quoted(self.ambiguous_example or '')}{more} read with '.' as the decimal"
                " mark; send decimal=',' if the file means otherwise"
            )
        elif self.decimal == "," and self.how is How.DECIDED:
            found.append(f"numbers were read with ',' as the decimal mark ({self.explained()})")
        return found

    def explained(self) -> str:
        """How the mark was decided, in a few words."""
        if self.how is How.DECIDED:
            others = f" and {self.deciders - 1:,} more" if self.deciders > 1 else ""
            return f"decided by {quoted(self.example or '')}{others}"
        return str(self.how)

    def to_json(self) -> dict[str, str]:
        """For the job and its review."""
        return {"value": self.decimal, "how": str(self.how), "detail": self.explained()}


# Given the fields, whether each row's cell of a field is a workbook's number cell: a
# frame with a boolean column `cell_<field>` per field and the rows' `index`.
CellTypes = Callable[[list[str]], pl.DataFrame]


def read_numbers(
    data: pl.DataFrame,
    kinds: dict[str, Kind],
    *,
    given: str | None,
    given_how: How,
    spreadsheet: bool,
    cell_types: CellTypes | None = None,
) -> tuple[pl.DataFrame, NumberReading | None]:
    """`data` with `num_<field>` (the typed value) and `nummsg_<field>` (why it cannot be
    read) for each number field in `kinds`, whose text is `text_<field>`; and how.

    In a workbook (`spreadsheet`), a value that reads like a number cell is taken for one
    unless the file's mark would read it otherwise; then `cell_types` tells.
    """
    if not kinds:
        return data, None
    cells = {
        f: pl.col(f"text_{f}").str.contains(CELL_NUMBER) if spreadsheet else pl.lit(False)
        for f in kinds
    }
    tables = {f: _distinct(data, f, kind, cells[f]) for f, kind in kinds.items()}
    reading = _decide(tables, given, given_how)
    if cell_types is not None and _needs_cell_types(tables, reading):
        data = data.join(cell_types(list(kinds)), on="index", how="left")
        cells = {f: pl.col(f"cell_{f}").fill_null(False) for f in kinds}
        tables = {f: _distinct(data, f, kind, cells[f]) for f, kind in kinds.items()}
        reading = _decide(tables, given, given_how)
    for field, kind in kinds.items():
        table = tables[field]
        currency = _main_currency(table) if kind is Kind.PRICE else None
        read = table.select("text", "cell", *_read(kind, reading.decimal, currency, field))
        data = data.join(
            read,
            left_on=[pl.col(f"text_{field}"), cells[field]],
            right_on=["text", "cell"],
            how="left",
        )
    return data, reading


def _distinct(data: pl.DataFrame, field: str, kind: Kind, cell: pl.Expr) -> pl.DataFrame:
    """Each distinct (text, is a number cell) of a field, how often it occurs, and how it
    could be read."""
    table = (
        data.filter(pl.col(f"text_{field}").is_not_null())
        .group_by(pl.col(f"text_{field}").alias("text"), cell.alias("cell"), maintain_order=True)
        .agg(pl.len().alias("times"))
    )
    text = pl.col("text")
    core = _without_currency(text, kind)
    unsigned = core.str.replace(r"^\((.*)\)$", "$1").str.replace(f"^[-+]{_SPACE}*", "")
    table = table.with_columns(
        unsigned.alias("core"),
        (core.str.starts_with("-") | core.str.contains(r"^\(.*\)$")).alias("negative"),
        _currency_of(text).alias("currency") if kind is Kind.PRICE else pl.lit(None, pl.String),
    )
    return table.with_columns(
        pl.col("core").str.contains(_VALID["."]).alias("dot"),
        pl.col("core").str.contains(_VALID[","]).alias("comma"),
    )


def _without_currency(text: pl.Expr, kind: Kind) -> pl.Expr:
    """A price without the currency before or after it (one of the two, not both)."""
    if kind is not Kind.PRICE:
        return text
    before = text.str.replace(_CURRENCY_PREFIX, "")
    return pl.when(before == text).then(text.str.replace(_CURRENCY_SUFFIX, "")).otherwise(before)


def _currency_of(text: pl.Expr) -> pl.Expr:
    """The currency a price names (a sign as its ISO code where it is clear), or null."""
    named = pl.coalesce(
        text.str.extract(_CURRENCY_PREFIX, 1), text.str.extract(_CURRENCY_SUFFIX, 1)
    )
    return named.replace(_SYMBOL_CODES)


def _decide(tables: dict[str, pl.DataFrame], given: str | None, given_how: How) -> NumberReading:
    """The file's decimal mark: the given one, else the one most values that read only one
    way use (a tie goes to `.`), else `.`."""
    if given:
        return NumberReading(given, given_how)
    person = ~pl.col("cell")
    votes = {
        ".": person & pl.col("dot") & ~pl.col("comma"),
        ",": person & pl.col("comma") & ~pl.col("dot"),
    }
    unsure = person & pl.col("dot") & pl.col("comma") & pl.col("core").str.contains("[.,]")
    counts: dict[str, int] = {}
    examples: dict[str, str | None] = {}
    for name, condition in [*votes.items(), ("?", unsure)]:
        hits = pl.concat([t.filter(condition).select("core", "times") for t in tables.values()])
        counts[name] = int(hits.get_column("times").sum())
        examples[name] = hits.item(0, "core") if hits.height else None
    if not counts["."] and not counts[","]:
        return NumberReading(
            ".", How.DEFAULT, ambiguous=counts["?"], ambiguous_example=examples["?"]
        )
    mark = "," if counts[","] > counts["."] else "."
    return NumberReading(mark, How.DECIDED, counts[mark], examples[mark])


def _needs_cell_types(tables: dict[str, pl.DataFrame], reading: NumberReading) -> bool:
    """A workbook whose number cells and text cells would read differently: with a `,`
    file, a number cell `1.5` is one and a half while the text `1.5` contradicts the file;
    with an undecided one, only a text `1.234` is ambiguous."""
    if reading.decimal == ",":
        shape = r"^-?[0-9]+\.[0-9]+$"
    elif reading.how is How.DEFAULT:
        shape = _AMBIGUOUS_CELL
    else:
        return False  # '.' decided or given: a number cell and its text read alike
    return any(t.get_column("text").str.contains(shape).any() for t in tables.values())


def _main_currency(table: pl.DataFrame) -> str | None:
    """The currency most prices of a column name, if any names one."""
    named = (
        table.filter(pl.col("currency").is_not_null())
        .group_by("currency")
        .agg(pl.col("times").sum())
        .sort(["times", "currency"], descending=[True, False])
    )
    return str(named.item(0, "currency")) if named.height else None


def _read(kind: Kind, decimal: str, currency: str | None, field: str) -> list[pl.Expr]:
    """The typed value and the message of each distinct value."""
    name = str(kind)
    text, cell, core = pl.col("text"), pl.col("cell"), pl.col("core")
    valid_person = pl.col("dot" if decimal == "." else "comma")
    other = pl.col("comma" if decimal == "." else "dot")
    plain = core.str.replace_all(_STRIP[decimal], "")
    if decimal == ",":
        plain = plain.str.replace(",", ".", literal=True)
    valid = pl.when(cell).then(text.str.contains(CELL_NUMBER)).otherwise(valid_person)
    canonical = pl.when(cell).then(text.str.strip_prefix("-")).otherwise(plain)
    negative = pl.when(cell).then(text.str.starts_with("-")).otherwise(pl.col("negative"))
    contradicts = ~cell & ~valid_person & other
    # A when/then chain grows a case at a time (its type changes after the first).
    message: Any = pl.when(negative & (valid | contradicts)).then(
        pl.lit(f"{name} must not be negative")
    )
    if currency is not None:
        named = pl.col("currency")
        message = message.when(~cell & named.is_not_null() & (named != currency)).then(
            pl.format(
                "price is in {}; the other prices in this file are in {}", named, pl.lit(currency)
            )
        )
    message = message.when(contradicts).then(
        pl.format(
            f"{name} '{{}}' does not match this file's number format ({FORMAT_SAMPLE[decimal]})",
            text,
        )
    )
    if kind is Kind.QUANTITY:
        whole = canonical.str.contains(r"^[0-9]+(?:\.0*)?$")
        value = pl.when(valid & whole & ~negative).then(
            canonical.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False)
        )
        message = (
            message.when(~valid | ~whole)
            .then(pl.lit("quantity must be a whole number"))
            .when(value.is_null())
            .then(pl.lit("quantity is too large"))
        )
    else:
        value = pl.when(valid & ~negative).then(canonical.cast(PRICE_DTYPE, strict=False))
        message = (
            message.when(~valid)
            .then(pl.lit("price is not a number"))
            .when(value.is_null())
            .then(pl.lit("price is too large"))
        )
    return [value.alias(f"num_{field}"), message.alias(f"nummsg_{field}")]
