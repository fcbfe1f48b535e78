"""Property-based: prices and quantities written as people in Germany, France, Switzerland
and the US write them, with random grouping and currency, in files saved in ten
encodings with their languages' letters, read back as the numbers they are.

Every generated file holds one value that decides its decimal mark (a price with cents),
as a real price list does; undecidable files are the contract suite's (they warn). The
budget is fixed and the runs derandomised, so CI runs the same cases every time.
"""

# ruff: noqa: RUF001  (the letters and apostrophes of other languages are the point)
from __future__ import annotations

import codecs
import csv
import io
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from itemsheet.sheet.formats import PackageLimits
from itemsheet.sheet.prepare import prepare

PACKAGE = PackageLimits(
    max_uncompressed_bytes=64 * 2**20, max_compression_ratio=200, max_entries=200, max_cells=10**6
)
# Ten encodings, each with words of a language its writers use.
WORDS = {
    "utf-8": ["Größe", "Écrou", "六角", "Винт", "żółta"],
    "utf-8-sig": ["Größe", "Ærø", "ナット", "Гайка"],
    "utf-16": ["Größe", "Écrou", "볼트", "螺栓"],
    "cp1252": ["Schraube", "Größe", "Mutter", "für", "Gerät", "Écrou", "crénelé", "tête"],
    "cp1250": ["Śruba", "łeb", "stożkowy", "Nakrętka", "żółta", "sprężysta"],
    "cp1251": ["Винт", "потайной", "головкой", "Гайка", "шестигранная", "Шайба"],
    "iso8859_15": ["Vis", "à", "tête", "fraisée", "Écrou", "œil", "élastique"],
    "cp932": ["六角", "ボルト", "ナット", "小", "ワッシャー", "平"],
    "euc_kr": ["육각", "볼트", "너트", "소형", "와셔", "평형"],
    "gb18030": ["六角", "螺栓", "螺母", "小号", "平", "垫圈"],
}
STYLES = {
    # decimal mark, the group separators its writers use, the currencies they write
    "de": (",", ["."], ["{} €", "{} EUR", "€ {}"]),
    "fr": (",", ["\u00a0", "\u202f", " "], ["{} €", "{}\u00a0€", "EUR {}"]),
    "ch": (".", ["'", "’"], ["CHF {}", "{} CHF"]),
    "en": (".", [","], ["${}", "USD {}"]),
}

prices = st.decimals(min_value=0, max_value=Decimal("9999999.99"), places=2)
quantities = st.integers(min_value=0, max_value=99_999_999)


def encodable(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def grouped(digits: str, separator: str) -> str:
    head = len(digits) % 3 or 3
    return separator.join(
        [digits[:head], *(digits[i : i + 3] for i in range(head, len(digits), 3))]
    )


@st.composite
def price_lists(draw: st.DrawFn) -> tuple[bytes, str, list[tuple[Decimal, int]], str, str]:
    """(file bytes, encoding, [(price, quantity)], style, delimiter)."""
    encoding = draw(st.sampled_from(sorted(WORDS)))
    style = draw(st.sampled_from(sorted(STYLES)))
    mark, separators, currencies = STYLES[style]
    separators = [s for s in separators if encodable(s, encoding)] or [" "]
    currencies = [c for c in currencies if encodable(c, encoding)]
    currency = draw(st.sampled_from([None, *currencies]))
    values = draw(st.lists(st.tuples(prices, quantities), min_size=1, max_size=25))
    # One price with cents: it can be read only one way, so it decides the mark.
    values.append((Decimal("9.99"), 1))

    def number(value: Decimal | int, *, cents: bool) -> str:
        whole, _, fraction = f"{value:.2f}".partition(".")
        if draw(st.booleans()):
            whole = grouped(whole, draw(st.sampled_from(separators)))
        return f"{whole}{mark}{fraction}" if cents else whole

    rows = [["SKU", "Name", "Price", "Quantity"]]
    for i, (price, quantity) in enumerate(values):
        cents = price != price.to_integral_value() or draw(st.booleans())
        written = number(price, cents=cents)
        if currency:
            written = currency.format(written)
        # A few different words, as an item's name has: a detector reads an encoding from
        # letters, and one short word repeated is not enough to tell Cyrillic from Greek.
        words = st.lists(st.sampled_from(WORDS[encoding]), min_size=3, max_size=4, unique=True)
        name = " ".join(draw(words))
        rows.append([f"SKU-{i}", name, written, number(quantity, cents=False)])
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    data = buffer.getvalue().encode(encoding)
    if encoding == "utf-16":
        assert data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    return data, encoding, values, style, delimiter


@settings(max_examples=150, deadline=None, derandomize=True)
@given(case=price_lists())
def test_numbers_people_write_read_back_as_written(
    case: tuple[bytes, str, list[tuple[Decimal, int]], str, str],
) -> None:
    data, encoding, values, style, delimiter = case
    validated, summary = prepare(data, filename="prices.csv", sheet=None, limits=PACKAGE)
    frame = validated.frame
    assert frame.get_column("error_message").null_count() == frame.height, frame.filter(
        frame.get_column("error_message").is_not_null()
    )
    assert summary.reading["decimal"]["value"] == STYLES[style][0]
    read = list(
        zip(
            frame.get_column("price").to_list(), frame.get_column("quantity").to_list(), strict=True
        )
    )
    assert read == values
    text = data.decode(encoding)
    assert frame.get_column("name").to_list() == [
        row[1]
        for row in list(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=delimiter))[
            1:
        ]
    ]
