"""`importer undo JOB_ID [--force] [--json]` as a user runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.contract.workbooks import write_xlsx


def test_undo_json_reports_the_undo_job_and_a_second_undo_is_refused(
    run_cli: Any, tmp_path: Path
) -> None:
    first = write_xlsx(tmp_path / "a.xlsx", [["SKU", "Name", "Price"], ["A-1", "Apple", 1]])
    second = write_xlsx(
        tmp_path / "b.xlsx", [["SKU", "Name", "Price"], ["A-1", "Apple", 2], ["B-2", "Pear", 3]]
    )
    assert run_cli("import", str(first), "--json").exit_code == 0
    imported = run_cli("import", str(second), "--json").report
    assert (imported["created"], imported["updated"]) == (1, 1)

    done = run_cli("undo", imported["job_id"], "--json")
    assert done.exit_code == 0, done.stderr[-2000:]
    report = done.report
    assert (report["source"], report["status"], report["undo_of"]) == (
        "undo",
        "completed",
        imported["job_id"],
    )
    assert (report["deleted"], report["updated"], report["failed"]) == (1, 1, 0)
    shown = run_cli("job", imported["job_id"], "--json").report
    assert (shown["status"], shown["created"], shown["updated"]) == ("undone", 1, 1)

    again = run_cli("undo", imported["job_id"], "--json")
    assert again.exit_code == 1
    assert again.report == {"detail": "this import has already been undone"}
    plain = run_cli("undo", imported["job_id"])
    assert plain.exit_code == 1 and "already been undone" in plain.stderr
