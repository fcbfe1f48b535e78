"""Import modes (README "Import modes"): `upsert` (the default), `create_only` and
`update_only`. Rows a mode leaves alone are `skipped`, each with its reason among the row
messages, never `failed`, and `created + updated + unchanged + skipped + failed ==
total_rows`. Run through the `importer import` CLI, on both databases where the batch
merge differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.test_cli_contract import (
    BOTH_DATABASES,
    Importer,
    Run,
    assert_completed,
    errors_by_row,
    item,
    items,
)
from tests.contract.test_rejected_rows import rejected
from tests.contract.workbooks import write_csv, write_xlsx

pytestmark = pytest.mark.subprocess  # the parse child

SHOP = [
    ["SKU", "Name", "Price"],
    ["M-1", "Hammer", 10],
    ["M-2", "Saw", 20],
    ["M-3", "Drill", 30],
]
# A supplier's price list: two of the shop's items (one at a new price), three it does not
# keep, and one row with a bad price.
SUPPLIER = [
    ["SKU", "Name", "Price"],
    ["M-1", "Hammer", 10],
    ["S-1", "Chisel", 5],
    ["M-2", "Saw", 22.5],
    ["S-2", "Plane", 40],
    ["M-9", "Level", "n/a"],
    ["S-3", None, 7],
]


def reasons(run: Run) -> dict[int, str]:
    return {row: e["message"] for row, e in errors_by_row(run).items()}


def seeded(tmp_path: Path, importer: Importer) -> None:
    run = importer(write_xlsx(tmp_path / "shop.xlsx", SHOP))
    assert_completed(run, created=3)
    assert run.report["mode"] == "upsert"


@BOTH_DATABASES
def test_update_only_updates_the_shops_items_and_creates_none_of_the_suppliers_others(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    seeded(tmp_path, importer)
    before = items(data_dir)

    run = importer(write_xlsx(tmp_path / "supplier.xlsx", SUPPLIER), "--mode", "update_only")

    assert run.report["mode"] == "update_only"
    assert_completed(run, updated=1, unchanged=1, skipped=3, failed=1)
    assert reasons(run) == {
        3: "item 'S-1' does not exist and the mode is update_only; it was not created",
        5: "item 'S-2' does not exist and the mode is update_only; it was not created",
        6: "price is not a number",
        7: "item 'S-3' does not exist and the mode is update_only; it was not created",
    }, run.describe()
    after = items(data_dir)
    assert set(after) == {"M-1", "M-2", "M-3"}
    assert after["M-2"] == item("Saw", price="22.5")
    assert after["M-1"] == before["M-1"] and after["M-3"] == before["M-3"]


@BOTH_DATABASES
def test_create_only_creates_the_new_items_and_leaves_stored_ones_alone(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    seeded(tmp_path, importer)
    before = items(data_dir)

    run = importer(write_xlsx(tmp_path / "supplier.xlsx", SUPPLIER), "--mode", "create_only")

    # S-3 has no name: a new item needs one, so it fails; M-9's price fails first.
    assert_completed(run, created=2, skipped=2, failed=2)
    messages = reasons(run)
    assert messages[2] == "item 'M-1' exists and the mode is create_only; it was left alone"
    assert messages[4] == "item 'M-2' exists and the mode is create_only; it was left alone"
    assert messages[7] == "name is required to create item 'S-3'"
    after = items(data_dir)
    assert {sku: after[sku] for sku in before} == before  # the Saw keeps its price
    assert after["S-1"] == item("Chisel", price="5")
    assert set(after) == {"M-1", "M-2", "M-3", "S-1", "S-2"}


def test_upsert_is_the_default_and_skips_nothing(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    seeded(tmp_path, importer)

    run = importer(write_xlsx(tmp_path / "supplier.xlsx", SUPPLIER))

    assert run.report["mode"] == "upsert"
    assert_completed(run, created=2, updated=1, unchanged=1, failed=2)


def test_a_dry_run_counts_what_the_mode_would_skip_and_writes_nothing(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    seeded(tmp_path, importer)
    before = items(data_dir)

    run = importer(
        write_xlsx(tmp_path / "supplier.xlsx", SUPPLIER), "--mode", "update_only", "--dry-run"
    )

    assert_completed(run, updated=1, unchanged=1, skipped=3, failed=1)
    assert items(data_dir) == before


def test_update_only_with_abort_does_not_count_a_new_nameless_sku_as_invalid(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    seeded(tmp_path, importer)
    rows = [["SKU", "Price"], ["M-1", 11], ["NEW-1", 3], ["M-3", 33]]

    run = importer(
        write_csv(tmp_path / "prices.csv", rows), "--mode", "update_only", "--on-error", "abort"
    )

    assert_completed(run, updated=2, skipped=1)
    assert items(data_dir)["M-3"] == item("Drill", price="33")


def test_skipped_rows_share_the_cap_on_kept_messages_and_are_counted_apart(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    seeded(tmp_path, importer)
    rows = [
        ["SKU", "Name", "Price"],
        *[[f"X-{i}", "Extra", 1 if i % 2 else "bad"] for i in range(10)],
        ["M-1", "Hammer", 12],
    ]
    env = {"IMPORTER_MAX_ROW_ERRORS": "4"}

    run = importer(
        write_csv(tmp_path / "many.csv", rows),
        "--mode",
        "update_only",
        "--batch-size",
        "3",
        env=env,
    )

    assert_completed(run, updated=1, skipped=5, failed=5)
    assert sorted(reasons(run)) == [2, 3, 4, 5]
    assert run.report["warnings"] == [
        "5 rows failed and 5 were skipped; the first 4 row messages are kept"
    ]
    # The rejected rows are the failures only, and say that more failed than they hold.
    content = rejected(data_dir, run.report["job_id"], "csv", env)
    lines = content.decode("utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in lines] == ['"SKU"', '"X-0"', '"X-2"', '""']
    assert lines[-1].endswith(
        '"3 more rows failed after row 5 and are not in this file: the'
        " import keeps the errors of its first 4 failing rows; import the"
        ' rows after row 5 of the original file again to find them"'
    )


def test_an_unknown_mode_is_refused_before_anything_runs(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    from typer.testing import CliRunner

    from tests.contract.test_cli_contract import cli_in_process

    path = write_xlsx(tmp_path / "shop.xlsx", SHOP)
    with cli_in_process(data_dir, {}, prefect=False) as app:
        result = CliRunner().invoke(app, ["import", str(path), "--mode", "replace"])

    assert result.exit_code == 2
    assert "replace" in result.stderr and "update_only" in result.stderr
    assert items(data_dir) == {}
