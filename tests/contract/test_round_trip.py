"""Round trip through the real `importer` commands: the template imports as it is, and a
file `importer export` wrote imports back with every row unchanged, nothing written.

Values are the awkward ones: keys and codes that look like numbers, formula-like text
(the CSV guards it, the importer reads the guard back), quotes, separators and line
breaks, `_x0041_` (a spreadsheet's escape), prices of many digits and quantities past
what a double holds."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from itemsheet.sheet.fields import FIELDS
from tests.contract.test_cli_contract import (
    _DATABASE_URLS,
    BOTH_DATABASES,
    Importer,
    assert_completed,
    cli_in_process,
    raw_items,
)
from tests.contract.test_rejected_rows import rejected

pytestmark = pytest.mark.subprocess  # the parse child

HEADER = ["SKU", "Name", "Description", "Category", "Unit", "Price", "Quantity", "Barcode"]
ROWS: list[list[Any]] = [
    ["000123", "Widget", 'Says "hi"; loud, twice', "Tools", "pcs", 12.5, 10, "0012345678905"],
    ["=SUM(A1)", '=HYPERLINK("x")', "+49 30 123", "-5% off", "@u", 0.1, 0, "'=quoted"],
    ["A_x0041_B", "Line one\nline two", None, None, None, "1234567890.1234", None, None],
    ["-7", "'leading quote", "tab\tinside", "x", "kg", 0, "9007199254740993", "4006381333931"],
    ["Ü-1", "Grüße, 東京", "€ 9,99 is text here", None, None, "0.0001", 1, None],
]


def write_text_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    """An .xlsx whose text cells hold text, also where it starts with `=` (openpyxl would
    otherwise write a formula), and a literal `_x0041_` saved as Excel saves it (openpyxl
    would leave it to be read as the escape of `A`)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for r, values in enumerate(rows, start=1):
        for c, value in enumerate(values, start=1):
            cell = sheet.cell(r, c, value)
            if isinstance(value, str):
                cell.value = re.sub(r"_(x[0-9A-Fa-f]{4}_)", r"_x005F_\1", value)
                cell.data_type = "s"
    book.save(path)
    return path


def cli(data_dir: Path, *args: str) -> Any:
    """Run an `importer` command in this process against the test's data dir."""
    env = {"IMPORTER_DATABASE_URL": _DATABASE_URLS[data_dir]} if data_dir in _DATABASE_URLS else {}
    with cli_in_process(data_dir, env, prefect=False) as app:
        result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
@BOTH_DATABASES
def test_an_export_imports_back_with_every_row_unchanged(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    source = write_text_xlsx(tmp_path / "source.xlsx", [HEADER, *ROWS])
    assert_completed(importer(source), created=len(ROWS))
    before = raw_items(data_dir)
    assert {"000123", "=SUM(A1)", "A_x0041_B", "-7"} <= set(before)

    exported = tmp_path / f"items.{fmt}"
    said = cli(data_dir, "export", str(exported)).stderr
    assert f"exported {len(ROWS)} items to" in said
    run = importer(exported)
    assert_completed(run, unchanged=len(ROWS))
    assert raw_items(data_dir) == before  # updated_at included: nothing was written

    # The CLI's filters: a prefix taken literally, a time with its zone.
    some = tmp_path / f"some.{fmt}"
    said = cli(
        data_dir,
        "export",
        str(some),
        "--sku-prefix",
        "A_x",
        "--changed-since",
        "2000-01-01T00:00+02:00",
    ).stderr
    assert "exported 1 item to" in said
    assert_completed(importer(some), unchanged=1)
    later = cli(data_dir, "export", str(some), "--changed-since", "2999-01-01").stderr
    assert "exported 0 items to" in later


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_an_export_of_one_import_imports_back_unchanged(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    first = importer(write_text_xlsx(tmp_path / "a.xlsx", [HEADER, *ROWS[:2]]))
    assert_completed(first, created=2)
    changed = [list(row) for row in ROWS[1:]]
    changed[0][1] = "Renamed"
    second = importer(write_text_xlsx(tmp_path / "b.xlsx", [HEADER, *changed]))
    assert_completed(second, created=len(ROWS) - 2, updated=1)
    exported = tmp_path / f"second.{fmt}"
    cli(data_dir, "export", str(exported), "--import", second.report["job_id"])
    # Its four items and no other (000123 came from the first import alone).
    assert_completed(importer(exported), unchanged=len(ROWS) - 1)


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_the_template_imports_as_it_is_its_example_one_valid_row(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    template = tmp_path / f"template.{fmt}"
    cli(data_dir, "template", str(template))
    run = importer(template)
    assert_completed(run, created=1)
    assert not [w for w in run.report["warnings"] if "ignored" in w], run.report["warnings"]
    stored = raw_items(data_dir)
    examples = {f.name: f.example for f in FIELDS}
    assert list(stored) == [examples["sku"]]
    assert {k: str(stored[examples["sku"]][k]) for k in examples} == examples


def test_export_and_template_refuse_a_file_of_another_kind_in_one_line(
    tmp_path: Path, data_dir: Path
) -> None:
    for args in (
        ("template", str(tmp_path / "t.ods")),
        ("export", str(tmp_path / "e.json")),
        ("export", str(tmp_path / "e.csv"), "--changed-since", "last week"),
        ("export", str(tmp_path / "e.csv"), "--import", str(uuid.UUID(int=3))),
        ("export", str(tmp_path / "e.csv"), "--sku-prefix", "A\x00"),
        ("export", str(tmp_path / "missing" / "e.csv")),
        ("template", str(tmp_path / "missing" / "t.xlsx")),
    ):
        with cli_in_process(data_dir, {}, prefect=False) as app:
            result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("e.*")) and not list(tmp_path.glob("t.*"))


@pytest.mark.parametrize(
    ("mode", "counts"),
    [
        ("upsert", {"unchanged": len(ROWS)}),
        ("update_only", {"unchanged": len(ROWS)}),
        # Every exported item is stored, so create_only leaves each alone, said as skipped.
        ("create_only", {"skipped": len(ROWS)}),
    ],
)
def test_an_export_imports_back_in_every_mode_and_writes_nothing(
    mode: str, counts: dict[str, int], tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_text_xlsx(tmp_path / "s.xlsx", [HEADER, *ROWS])), created=5)
    before = raw_items(data_dir)
    exported = tmp_path / "items.csv"
    cli(data_dir, "export", str(exported))
    run = importer(exported, "--mode", mode)
    assert run.report["mode"] == mode
    assert_completed(run, **counts)
    assert raw_items(data_dir) == before


@pytest.mark.parametrize(
    ("mode", "counts", "written"),
    [
        ("create_only", {"created": len(ROWS) - 2, "skipped": 1}, len(ROWS) - 2),
        ("update_only", {"updated": 1, "skipped": len(ROWS) - 2}, 1),
    ],
)
def test_an_export_of_an_import_with_a_mode_holds_only_what_it_wrote(
    mode: str,
    counts: dict[str, int],
    written: int,
    tmp_path: Path,
    importer: Importer,
    data_dir: Path,
) -> None:
    assert_completed(importer(write_text_xlsx(tmp_path / "a.xlsx", [HEADER, *ROWS[:2]])), created=2)
    changed = [list(row) for row in ROWS[1:]]
    changed[0][1] = "Renamed"
    second = importer(write_text_xlsx(tmp_path / "b.xlsx", [HEADER, *changed]), "--mode", mode)
    assert_completed(second, **counts)
    exported = tmp_path / "second.csv"
    said = cli(data_dir, "export", str(exported), "--import", second.report["job_id"]).stderr
    # The rows its mode skipped were not written, so they are not its items.
    assert f"exported {written} item" in said
    assert_completed(importer(exported), unchanged=written)


def test_a_filled_in_template_that_fails_comes_back_with_an_error_column_and_imports_fixed(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    template = tmp_path / "template.xlsx"
    cli(data_dir, "template", str(template))
    book = openpyxl.load_workbook(template)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    price = HEADER.index("Price") + 1
    sheet.cell(2, price, "a lot")
    book.save(template)
    first = importer(template)
    assert_completed(first, failed=1)

    fixed = tmp_path / "rejected.xlsx"
    fixed.write_bytes(rejected(data_dir, first.report["job_id"], "xlsx"))
    book = openpyxl.load_workbook(fixed)
    sheet = book.worksheets[0]
    assert [c.value for c in sheet[1]] == [*header, "Error"]
    assert "price" in str(sheet.cell(2, len(HEADER) + 1).value)
    sheet.cell(2, price, 9.99)
    book.save(fixed)
    second = importer(fixed)
    # The template's header with the Error column is read as the template's: nothing ignored.
    assert_completed(second, created=1)
    assert not second.report["warnings"], second.report["warnings"]
