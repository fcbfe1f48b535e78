"""The `importer` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.contract.workbooks import write_xlsx

ROWS = [["SKU", "Name", "Qty"], ["A-1", "Apple", 3], ["B-2", "Pear", "x"]]


@pytest.mark.subprocess
def test_import_works_without_any_prefect_server_configured(tmp_path: Path) -> None:
    """No PREFECT_API_URL: Prefect's temporary server runs the flow, as on a fresh machine."""
    path = write_xlsx(tmp_path / "fruit.xlsx", ROWS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"IMPORTER_DATA_DIR": str(tmp_path / "var"), "PREFECT_HOME": str(tmp_path / "prefect")}
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "import", str(path), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # completed, even with a failed row
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["status"] == "completed", report
    assert (report["created"], report["failed"]) == (1, 1)
    assert report["errors"][0]["row"] == 3


def test_import_json_then_job_and_jobs_show_the_same_job(run_cli: object, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "fruit.xlsx", ROWS)
    result: CliResult = run_cli("import", str(path), "--json")  # type: ignore[operator]
    assert result.exit_code == 0
    report = result.report
    assert report["status"] == "completed"
    assert report["percent"] == 100.0 and report["processed_rows"] == 2
    assert report["errors"] == [
        {"row": 3, "column": "quantity", "value": "x", "message": "quantity must be a whole number"}
    ]
    shown = run_cli("job", report["job_id"], "--json").report  # type: ignore[operator]
    assert {k: shown[k] for k in ("job_id", "status", "created", "failed")} == {
        k: report[k] for k in ("job_id", "status", "created", "failed")
    }
    listed = json.loads(run_cli("jobs", "--json").stdout.strip().splitlines()[-1])  # type: ignore[operator]
    assert [j["job_id"] for j in listed] == [report["job_id"]]


def test_failed_import_exits_1_with_the_reason(run_cli: object, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\x00\x01binary")
    result: CliResult = run_cli("import", str(path), "--json")  # type: ignore[operator]
    assert result.exit_code == 1
    assert result.report["status"] == "failed"
    assert "accepted formats" in result.report["error"]


def test_oversize_file_is_refused_before_a_job_is_created(
    run_cli: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from settings import get_settings

    monkeypatch.setenv("IMPORTER_MAX_UPLOAD_BYTES", "100")
    get_settings.cache_clear()
    path = write_xlsx(tmp_path / "big.xlsx", ROWS)
    result: CliResult = run_cli("import", str(path), "--json")  # type: ignore[operator]
    assert result.exit_code == 1
    assert result.report["error"].startswith("the file is larger than the limit")
