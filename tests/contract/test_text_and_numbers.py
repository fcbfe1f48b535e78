"""Contract v2, "Text files" and "Numbers written by people", through `importer import`.

Every example of the two sections, as the files Excel and other programs write when a
person in Germany, France, Switzerland, Poland, Russia, Japan, Korea or China saves "CSV"
or "Unicode Text". The fixtures and checks are the contract suite's own.
"""

# ruff: noqa: RUF001  (the letters and apostrophes of other languages are the point)
from __future__ import annotations

import codecs
from decimal import Decimal
from pathlib import Path

import pytest

from tests.contract.test_cli_contract import (
    BOTH_DATABASES,
    Importer,
    assert_completed,
    assert_failed,
    assert_row_error,
    errors_by_row,
    items,
)
from tests.contract.workbooks import Rows, csv_text, write_xlsx

pytestmark = pytest.mark.subprocess  # the parse child


def write_text(
    path: Path, rows: Rows, encoding: str, *, delimiter: str = ";", bom: bytes = b""
) -> Path:
    """`rows` as delimited text in `encoding` (CRLF, as Excel writes it)."""
    path.write_bytes(bom + csv_text(rows, delimiter=delimiter, crlf=True).encode(encoding))
    return path


def prices(data_dir: Path) -> dict[str, Decimal | None]:
    return {sku: values["price"] for sku, values in items(data_dir).items()}


def quantities(data_dir: Path) -> dict[str, int | None]:
    return {sku: values["quantity"] for sku, values in items(data_dir).items()}


def names(data_dir: Path) -> dict[str, str]:
    return {sku: values["name"] for sku, values in items(data_dir).items()}


# --- encodings ------------------------------------------------------------------------

# What a person in each language would name items, in the code page their Excel writes.
LANGUAGES = {
    "windows-1252": ["Schraube Größe M6", "Mutter für Gerät", "Écrou crénelé à tête", "Ærø ñandú"],
    "windows-1250": ["Śruba łeb stożkowy", "Nakrętka żółta", "Podkładka sprężysta"],
    "windows-1251": ["Винт с потайной головкой", "Гайка шестигранная", "Шайба пружинная"],
    "iso-8859-15": ["Vis à tête fraisée 12 €", "Écrou œil", "Rondelle élastique"],
    "shift_jis": ["六角ボルト M6", "ナット 小", "ワッシャー 平"],
    "euc-kr": ["육각 볼트", "너트 소형", "와셔 평형"],
    "gb18030": ["六角螺栓", "螺母小号", "平垫圈"],
}
EXPECTED_LABELS = {
    "windows-1252": "Windows-1252",
    "windows-1250": "Windows-1250",
    "windows-1251": "Windows-1251",
    "iso-8859-15": "ISO-8859-15",
    "shift_jis": "Shift_JIS",
    "euc-kr": "EUC-KR",
    "gb18030": "GB18030",
}


@pytest.mark.parametrize("encoding", list(LANGUAGES))
def test_a_csv_in_a_legacy_code_page_reads_as_its_writer_saw_it(
    encoding: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [["SKU", "Name"], *[[f"A-{i}", n] for i, n in enumerate(LANGUAGES[encoding])]]
    run = importer(write_text(tmp_path / "items.csv", rows, encoding))
    assert_completed(run, created=len(rows) - 1)
    assert names(data_dir) == {f"A-{i}": n for i, n in enumerate(LANGUAGES[encoding])}
    label = EXPECTED_LABELS[encoding]
    assert f"read as {label} (detected), ';'-separated" in run.report["warnings"]
    assert run.report["reading"]["encoding"]["how"] == "detected"


def test_a_non_ascii_byte_far_into_the_file_decides_the_encoding(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [["SKU", "Name"], *[[f"A-{i:05d}", f"Item {i}"] for i in range(6000)]]
    rows.append(["Z-1", "Müller Drahtseil"])
    file = write_text(tmp_path / "items.csv", rows, "cp1252")
    assert file.read_bytes().index("ü".encode("cp1252")) > 64 * 1024
    run = importer(file)
    assert_completed(run, created=6001)
    assert names(data_dir)["Z-1"] == "Müller Drahtseil"


@pytest.mark.parametrize(
    ("codec", "bom", "label"),
    [
        ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16LE"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16BE"),
        ("utf-32-le", codecs.BOM_UTF32_LE, "UTF-32LE"),
        ("utf-32-be", codecs.BOM_UTF32_BE, "UTF-32BE"),
        ("utf-8", codecs.BOM_UTF8, "UTF-8"),
    ],
)
def test_a_byte_order_mark_decides_the_encoding(
    codec: str, bom: bytes, label: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    # Excel's "Unicode Text": UTF-16 LE with a BOM, tab-separated.
    rows: Rows = [["SKU", "Name", "Price"], ["A-1", "Größe 六角", "9,99"], ["A-2", "Ærø", "12,50"]]
    file = write_text(tmp_path / "items.txt", rows, codec, delimiter="\t", bom=bom)
    run = importer(file)
    assert_completed(run, created=2)
    assert names(data_dir) == {"A-1": "Größe 六角", "A-2": "Ærø"}
    assert prices(data_dir) == {"A-1": Decimal("9.99"), "A-2": Decimal("12.5")}
    assert run.report["reading"]["encoding"] == {
        "value": codec,
        "label": label,
        "how": "byte order mark",
    }


def test_the_encoding_option_overrides_detection(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [["SKU", "Name"], ["A-1", "Größe"]]
    file = write_text(tmp_path / "items.csv", rows, "cp1252")
    # As the code page for Central Europe, the same bytes are other letters.
    run = importer(file, "--encoding", "cp1250")
    assert_completed(run, created=1)
    assert names(data_dir) == {"A-1": "Größe".encode("cp1252").decode("cp1250")}
    assert run.report["encoding"] == "cp1250"
    assert run.report["reading"]["encoding"]["how"] == "given"


def test_a_file_that_does_not_decode_in_the_given_encoding_names_the_byte_and_encoding(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [["SKU", "Name"], ["A-1", "plain"], ["A-2", "Größe"]]
    file = write_text(tmp_path / "items.csv", rows, "cp1252")
    offset = file.read_bytes().index("ö".encode("cp1252"))
    run = importer(file, "--encoding", "utf-8")
    reason = assert_failed(run)
    assert f"byte {offset:,}" in reason
    assert "UTF-8" in reason
    assert items(data_dir) == {}


def test_an_unknown_encoding_name_is_refused_with_a_sentence(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    file = write_text(tmp_path / "items.csv", [["SKU"], ["A"]], "utf-8")
    result = CliRunner().invoke(app, ["import", str(file), "--encoding", "no-such-codec"])
    assert result.exit_code == 2
    assert "is not an encoding Python knows" in " ".join(result.output.split())


def test_nul_characters_after_decoding_are_not_text(tmp_path: Path, importer: Importer) -> None:
    # Binary data is refused by its first bytes; a NUL further in is found while decoding.
    rows: Rows = [["SKU", "Name"], *[[f"A-{i:05d}", "Größe"] for i in range(5000)]]
    text = csv_text(rows, delimiter="\t") + "Z-1\tx\x00y\n"
    file = tmp_path / "items.txt"
    file.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert "NUL characters" in assert_failed(importer(file))
    early = tmp_path / "early.txt"
    early.write_bytes(codecs.BOM_UTF16_LE + "SKU\tName\r\nA\tx\x00y\r\n".encode("utf-16-le"))
    assert "not a spreadsheet we can read" in assert_failed(importer(early))


# --- delimiters and quoting ----------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_is_detected(
    delimiter: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [["SKU", "Name", "Price"], ["A-1", "a;b|c,d", "1.50"], ["A-2", "plain", "2"]]
    run = importer(write_text(tmp_path / "items.csv", rows, "utf-8", delimiter=delimiter))
    assert_completed(run, created=2)
    assert names(data_dir) == {"A-1": "a;b|c,d", "A-2": "plain"}
    assert run.report["reading"]["delimiter"]["value"] == delimiter


def test_the_delimiter_option_overrides_detection(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    file = tmp_path / "items.csv"
    # Detection would split at ',' (more fields); the person knows the file is ';'-separated.
    file.write_text("SKU;Name\nA-1;Nuts, bolts, washers\nA-2;Screws, M4, M5\n")
    run = importer(file, "--delimiter", ";")
    assert_completed(run, created=2)
    assert names(data_dir) == {"A-1": "Nuts, bolts, washers", "A-2": "Screws, M4, M5"}
    assert run.report["reading"]["delimiter"] == {"value": ";", "label": "';'", "how": "given"}


def test_codes_in_text_files_arrive_exactly(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [
        ["SKU", "Name", "Barcode"],
        ["000017", "1E5", "12345678901234567890"],
        ["1E5", "000017", "0000000000017"],
    ]
    run = importer(write_text(tmp_path / "items.csv", rows, "cp1252"))
    assert_completed(run, created=2)
    stored = items(data_dir)
    assert stored["000017"]["name"] == "1E5"
    assert stored["000017"]["barcode"] == "12345678901234567890"
    assert stored["1E5"]["name"] == "000017"
    assert stored["1E5"]["barcode"] == "0000000000017"


# --- numbers -----------------------------------------------------------------------------


@BOTH_DATABASES
def test_german_numbers_read_as_meant_and_1000_is_a_thousand(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [
        ["SKU", "Name", "Price", "Quantity"],
        ["A-1", "Schraube", "9,99", "1.000"],
        ["A-2", "Mutter", "1.234,56", "2.500"],
        ["A-3", "Scheibe", "12,5", "7"],
        ["A-4", "Dübel", "1.000", "12"],
        ["A-5", "Anker", "2,5", "2,5"],
    ]
    run = importer(write_text(tmp_path / "artikel.csv", rows, "cp1252"))
    assert_completed(run, created=4, failed=1)
    assert prices(data_dir) == {
        "A-1": Decimal("9.99"),
        "A-2": Decimal("1234.56"),
        "A-3": Decimal("12.5"),
        "A-4": Decimal("1000"),
    }
    assert quantities(data_dir) == {"A-1": 1000, "A-2": 2500, "A-3": 7, "A-4": 12}
    assert_row_error(run, 6, "quantity", "whole number")
    assert run.report["reading"]["decimal"]["value"] == ","
    assert run.report["reading"]["decimal"]["how"] == "decided by the values"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        pytest.param(["1\u00a0234,56", "12,50"], ["1234.56", "12.5"], id="fr-nbsp"),
        pytest.param(["1\u202f234,56", "0,5"], ["1234.56", "0.5"], id="fr-narrow-nbsp"),
        pytest.param(["1 234,56", "1\u2009000,5"], ["1234.56", "1000.5"], id="spaces"),
        pytest.param(["1'234.50", "1’234’567.25"], ["1234.5", "1234567.25"], id="ch"),
        pytest.param(["CHF 1'234.50", "CHF 9.90"], ["1234.5", "9.9"], id="ch-chf"),
        pytest.param(["€ 9,99", "12,50 €"], ["9.99", "12.5"], id="euro-sign"),
        pytest.param(["1.299,00 EUR", "EUR 5,00"], ["1299", "5"], id="euro-code"),
        pytest.param(
            ["$12.50", "+1,234.50", "0.5"], ["12.5", "1234.5", "0.5"], id="us-dollar-plus"
        ),
        pytest.param(["1.234.567,89", "3,1"], ["1234567.89", "3.1"], id="de-millions"),
    ],
)
def test_numbers_written_by_people_in_each_style(
    written: list[str], expected: list[str], tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [["SKU", "Name", "Price"], *[[f"A-{i}", "x", v] for i, v in enumerate(written)]]
    run = importer(write_text(tmp_path / "items.csv", rows, "utf-8"))
    assert_completed(run, created=len(written))
    assert prices(data_dir) == {f"A-{i}": Decimal(v) for i, v in enumerate(expected)}


@pytest.mark.parametrize(
    ("mark", "contradicting", "sample"), [(",", "1.5", "1.234,56"), (".", "1,5", "1,234.56")]
)
def test_a_value_that_contradicts_the_files_mark_is_a_row_error(
    mark: str, contradicting: str, sample: str, tmp_path: Path, importer: Importer
) -> None:
    deciding = ["9,99", "12,5"] if mark == "," else ["9.99", "12.5"]
    rows: Rows = [
        ["SKU", "Name", "Price"],
        *[[f"A-{i}", "x", v] for i, v in enumerate([*deciding, contradicting])],
    ]
    run = importer(write_text(tmp_path / "items.csv", rows, "utf-8"))
    assert_completed(run, created=2, failed=1)
    record = assert_row_error(run, 4, "price")
    assert record["message"] == (
        f"price '{contradicting}' does not match this file's number format ({sample})"
    )


def test_an_undecided_file_reads_with_a_point_and_warns_once(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [
        ["SKU", "Name", "Price", "Quantity"],
        ["A-1", "x", "1,234", "5"],
        ["A-2", "y", "1.000", "1,000"],
        ["A-3", "z", "12", "7"],
    ]
    run = importer(write_text(tmp_path / "items.csv", rows, "utf-8"))
    assert_completed(run, created=3)
    assert prices(data_dir) == {"A-1": Decimal("1234"), "A-2": Decimal(1), "A-3": Decimal(12)}
    assert quantities(data_dir) == {"A-1": 5, "A-2": 1000, "A-3": 7}
    assert (
        "'1,234' and 2 more values were read with '.' as the decimal mark;"
        " send decimal=',' if the file means otherwise"
    ) in run.report["warnings"]
    assert run.report["reading"]["decimal"]["how"] == "default"


@BOTH_DATABASES
def test_the_decimal_option_always_wins(tmp_path: Path, importer: Importer, data_dir: Path) -> None:
    rows: Rows = [
        ["SKU", "Name", "Price", "Quantity"],
        ["A-1", "x", "1,234", "5"],
        ["A-2", "y", "1.000", "1.000"],
        ["A-3", "z", "9.99", "1"],
    ]
    run = importer(write_text(tmp_path / "items.csv", rows, "utf-8"), "--decimal", ",")
    assert_completed(run, created=2, failed=1)
    assert prices(data_dir) == {"A-1": Decimal("1.234"), "A-2": Decimal(1000)}
    assert quantities(data_dir) == {"A-1": 5, "A-2": 1000}
    assert_row_error(run, 4, "price", "does not match this file's number format (1.234,56)")
    assert run.report["reading"]["decimal"]["how"] == "given"
    assert not [w for w in run.report["warnings"] if "decimal mark" in w]


def test_a_price_in_another_currency_than_the_columns_is_a_row_error(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [
        ["SKU", "Name", "Price"],
        ["A-1", "x", "€ 9,99"],
        ["A-2", "y", "12,50 EUR"],
        ["A-3", "z", "$ 3,50"],
        ["A-4", "w", "4,00"],
    ]
    run = importer(write_text(tmp_path / "items.csv", rows, "cp1252"))
    assert_completed(run, created=3, failed=1)
    record = assert_row_error(run, 4, "price")
    assert record["message"] == "price is in USD; the other prices in this file are in EUR"
    assert prices(data_dir) == {"A-1": Decimal("9.99"), "A-2": Decimal("12.5"), "A-4": Decimal(4)}


def test_negative_numbers_stay_row_errors(tmp_path: Path, importer: Importer) -> None:
    rows: Rows = [
        ["SKU", "Name", "Price", "Quantity"],
        ["A-1", "x", "-1.62", "1"],
        ["A-2", "y", "(1.62)", "1"],
        ["A-3", "z", "€ -1,62", "1"],
        ["A-4", "w", "1.62", "-3"],
        ["A-5", "v", "1.62", "3"],
    ]
    run = importer(write_text(tmp_path / "items.csv", rows, "utf-8"))
    assert_completed(run, created=1, failed=4)
    for row in (2, 3, 4):
        assert_row_error(run, row, "price", "must not be negative")
    assert_row_error(run, 5, "quantity", "must not be negative")


@BOTH_DATABASES
def test_a_workbook_reads_its_text_numbers_by_the_files_mark_and_its_numbers_as_numbers(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [
        ["SKU", "Name", "Price", "Quantity"],
        ["A-1", "x", 1.5, 2],
        ["A-2", "y", "9,99", 3],
        ["A-3", "z", "1.250,00", "2.500"],
        ["A-4", "w", 1.234, 4],
    ]
    run = importer(write_xlsx(tmp_path / "items.xlsx", rows))
    assert_completed(run, created=4)
    assert prices(data_dir) == {
        "A-1": Decimal("1.5"),
        "A-2": Decimal("9.99"),
        "A-3": Decimal("1250"),
        "A-4": Decimal("1.234"),
    }
    assert quantities(data_dir) == {"A-1": 2, "A-2": 3, "A-3": 2500, "A-4": 4}


def test_the_review_shows_the_mark_and_how_it_was_decided(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: Rows = [["SKU", "Name", "Price"], ["A-1", "x", "9,99"], ["A-2", "y", "1.000"]]
    run = importer(write_text(tmp_path / "items.csv", rows, "cp1252"), "--review")
    assert run.report["status"] == "awaiting_review"
    assert run.report["reading"]["decimal"] == {
        "value": ",",
        "how": "decided by the values",
        "detail": "decided by '9,99'",
    }
    assert run.report["preview"]["counts"]["created"] == 2
    assert items(data_dir) == {}
    assert errors_by_row(run) == {}
