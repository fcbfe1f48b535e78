"""Numbers written by people: the decimal mark a file uses, and each price and quantity
read with it (vectorised: polars expressions over whole columns, no per-row Python).

A value may carry group separators, a decimal mark `,` or `.`, a leading `+` and (prices)
a currency sign or ISO code. The decimal mark is decided once per file from every value
that can be read only one way (`9,99`, `1.234,56` say `,`; `9.99`, `1,234.50` say `.`);
`1,234` and `1.000` decide nothing and are read with the mark decided. A number cell of a
workbook is a number already: it neither votes nor is read with the file's mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from itemsheet.fields import Kind
from itemsheet.messages import quoted
from itemsheet.text import How

PRICE_DTYPE = pl.Decimal(18, 4)
DECIMALS = (".", ",")
FORMAT_SAMPLE = {".": "1,234.56", ",": "1.234,56"}
# Group separators besides `.` and `,`: apostrophes (Swiss), spaces of every width.
_OTHER_GROUPS = ("'", "\u2019", " ", "\u00a0", "\u202f", "\u2009")
_CURRENCY = r"(?:\p{Sc}|[A-Z]{3})"
_CURRENCY_PREFIX = rf"^({_CURRENCY})\s*"
_CURRENCY_SUFFIX = rf"\s*({_CURRENCY})$"
# How a number cell of a workbook reads as text.
_CELL_NUMBER = r"^-?\d+(?:\.\d+)?$"
_AMBIGUOUS_CELL = r"^[1-9]\d{0,2}\.\d{3}$"
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
    grouped = "|".join(f"[1-9]\\d{{0,2}}(?:{_char(g)}\\d{{3}})+" for g in groups)
    m = _char(mark)
    return f"^(?:(?:\\d+|{grouped})(?:{m}\\d*)?|{m}\\d+)$"


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

    def to_json(self) -> dict[str, Any]:
        """For the job and its review."""
        return {"value": self.decimal, "how": str(self.how), "detail": self.explained()}


def number_columns(fields: list[str], kinds: dict[str, Kind]) -> list[str]:
    """The fields read as numbers."""
    return [f for f in fields if kinds[f] in (Kind.PRICE, Kind.QUANTITY)]


def _without_currency(text: pl.Expr, kind: Kind) -> pl.Expr:
    """A price without the currency before or after it (one of the two, not both)."""
    if kind is not Kind.PRICE:
        return text
    before = text.str.replace(_CURRENCY_PREFIX, "")
    return pl.when(before == text).then(text.str.replace(_CURRENCY_SUFFIX, "")).otherwise(before)


def _unsigned(text: pl.Expr, kind: Kind) -> pl.Expr:
    """The value without its currency (prices), parentheses or sign."""
    core = _without_currency(text, kind)
    return core.str.replace(r"^\((.*)\)$", "$1").str.replace(r"^[-+]\s*", "")


def _negative(text: pl.Expr, kind: Kind) -> pl.Expr:
    core = _without_currency(text, kind)
    return core.str.starts_with("-") | core.str.contains(r"^\(.*\)$")


def _person_written(text: pl.Expr, cell_is_number: pl.Expr | None) -> pl.Expr:
    """The value is text a person wrote (not a workbook's number cell). Without the cell
    types, a workbook value that reads like a number cell is taken for one."""
    if cell_is_number is None:
        return pl.lit(True)
    return ~cell_is_number


def decide_decimal(
    frame: pl.DataFrame,
    kinds: dict[str, Kind],
    *,
    given: str | None,
    given_how: How = How.GIVEN,
    cell_is_number: dict[str, pl.Expr | None],
) -> NumberReading:
    """The file's decimal mark: the given one, else the one most values that read only one
    way use, else `.`. `frame` has a column `text_<field>` per number field."""
    if given:
        return NumberReading(given, given_how)
    votes = {mark: 0 for mark in DECIMALS}
    examples: dict[str, str | None] = {mark: None for mark in DECIMALS}
    ambiguous, ambiguous_example = 0, None
    for field, kind in kinds.items():
        text = pl.col(f"text_{field}")
        core = _unsigned(text, kind)
        dot, comma = core.str.contains(_VALID["."]), core.str.contains(_VALID[","])
        person = text.is_not_null() & _person_written(text, cell_is_number.get(field))
        row = frame.select(
            (person & dot & ~comma).alias("."),
            (person & comma & ~dot).alias(","),
            (person & dot & comma & core.str.contains("[.,]")).alias("?"),
            core.alias("core"),
        )
        for mark in DECIMALS:
            hits = row.filter(pl.col(mark))
            votes[mark] += hits.height
            if examples[mark] is None and hits.height:
                examples[mark] = hits.item(0, "core")
        unsure = row.filter(pl.col("?"))
        ambiguous += unsure.height
        if ambiguous_example is None and unsure.height:
            ambiguous_example = unsure.item(0, "core")
    if not votes["."] and not votes[","]:
        return NumberReading(
            ".", How.DEFAULT, ambiguous=ambiguous, ambiguous_example=ambiguous_example
        )
    # The mark most deciding values use wins; a tie goes to '.'.
    mark = "," if votes[","] > votes["."] else "."
    return NumberReading(mark, How.DECIDED, votes[mark], examples[mark])


def needs_cell_types(frame: pl.DataFrame, fields: list[str], reading: NumberReading) -> bool:
    """A workbook whose number cells and text cells would read differently: with a `,`
    file, a number cell `1.5` is one and a half while the text `1.5` contradicts the file;
    with an undecided one, only a text `1.234` is ambiguous."""
    if reading.decimal == ",":
        shape = r"^-?\d+\.\d+$"
    elif reading.how is How.DEFAULT:
        shape = _AMBIGUOUS_CELL
    else:
        return False  # '.' decided or given: a number cell and its text read alike
    return bool(
        frame.select(
            pl.any_horizontal(pl.col(f"text_{f}").str.contains(shape) for f in fields).any()
        ).item()
    )


def read_number(
    text: pl.Expr,
    kind: Kind,
    *,
    decimal: str,
    cell_is_number: pl.Expr | None,
    currency: str | None,
) -> tuple[pl.Expr, pl.Expr]:
    """(the value, or null; the message for a value that cannot be read, or null).

    Prices are `PRICE_DTYPE`, quantities `Int64`.
    """
    field = str(kind)
    person = _person_written(text, cell_is_number)
    core = _unsigned(text, kind)
    valid_person = core.str.contains(_VALID[decimal])
    plain = core.str.replace_all(_STRIP[decimal], "")
    if decimal == ",":
        plain = plain.str.replace(",", ".", literal=True)
    if cell_is_number is None:
        # A workbook's number cell reads like '12.5'; a text file has none.
        valid = valid_person
        canonical = plain
    else:
        valid = pl.when(person).then(valid_person).otherwise(text.str.contains(_CELL_NUMBER))
        canonical = pl.when(person).then(plain).otherwise(text.str.strip_prefix("-"))
    negative = pl.when(person).then(_negative(text, kind)).otherwise(text.str.starts_with("-"))
    other = "," if decimal == "." else "."
    contradicts = person & ~valid_person & core.str.contains(_VALID[other])
    message = (
        pl.when(text.is_null())
        .then(None)
        .when(negative & (valid | contradicts))
        .then(pl.lit(f"{field} must not be negative"))
    )
    if kind is Kind.PRICE and currency is not None:
        named = _currency_of(text)
        message = message.when(person & named.is_not_null() & (named != currency)).then(
            pl.format(
                "price is in {}; the other prices in this file are in {}", named, pl.lit(currency)
            )
        )
    message = message.when(contradicts).then(
        pl.format(
            f"{field} '{{}}' does not match this file's number format ({FORMAT_SAMPLE[decimal]})",
            text,
        )
    )
    if kind is Kind.QUANTITY:
        whole = canonical.str.contains(r"^\d+(?:\.0*)?$")
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
    return value, message


def _currency_of(text: pl.Expr) -> pl.Expr:
    """The currency a price names (a sign as its ISO code where it is clear), or null."""
    named = pl.coalesce(
        text.str.extract(_CURRENCY_PREFIX, 1), text.str.extract(_CURRENCY_SUFFIX, 1)
    )
    return named.replace(_SYMBOL_CODES)


def main_currency(frame: pl.DataFrame, column: str) -> str | None:
    """The currency most prices of a column name, if any names one."""
    named = frame.select(_currency_of(pl.col(column)).alias("c")).get_column("c").drop_nulls()
    if named.is_empty():
        return None
    counts = named.value_counts(sort=True)
    return str(counts.item(0, "c"))
