"""`importer gc` as a user runs it: what it removes, and what it says about it.

`gc` never talks to Prefect, so these run the command in this process without the
session's Prefect server (the `run_cli` fixture would start it).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from db.models import JobStatus, utcnow
from tests.conftest import CliResult
from tests.itemsheet.old_jobs import LONG_AGO, add_job, age, error_count, job_row, store_old


def gc(*args: str) -> CliResult:
    result = CliRunner().invoke(app, ["gc", *args], catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def _old_partial(next_to: Path, size: int) -> Path:
    partial = next_to.parent / f"{next_to.name}.{'7' * 32}.partial"
    partial.write_bytes(b"p" * size)
    return age(partial, timedelta(hours=2))


def test_gc_json_removes_an_expired_jobs_file_errors_and_leftovers_and_counts_them(
    importer_env: Path,
) -> None:
    file = store_old(b"s" * 2048)
    job_id = add_job(file, JobStatus.COMPLETED, ended_ago=LONG_AGO, errors=5)
    partial = _old_partial(Path(file.uri), 100)

    result = gc("--json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "dry_run": False,
        "retention_days": 90,
        "jobs": 1,
        "row_errors": 5,
        "stored_files": 1,
        "stored_bytes": 2048,
        "work_files": 0,
        "work_bytes": 0,
        "unfinished_files": 1,
        "unfinished_bytes": 100,
        "removed_bytes": 2148,
        "undo_days": 30,
        "undo_imports": 0,
        "undo_batches": 0,
        "undo_bytes": 0,
    }
    assert not Path(file.uri).exists() and not partial.exists()
    assert error_count(job_id) == 0
    assert job_row(job_id).created == 7
    shown = CliRunner().invoke(app, ["job", str(job_id)], catch_exceptions=False).stdout
    assert f"file and row errors removed by retention on {utcnow():%Y-%m-%d}" in shown


def test_gc_dry_run_says_what_it_would_remove_in_readable_sizes_and_removes_nothing(
    importer_env: Path,
) -> None:
    file = store_old(b"s" * 3072)
    job_id = add_job(file, JobStatus.FAILED, ended_ago=LONG_AGO, errors=2)

    result = gc("--dry-run")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "jobs ended over 90 days ago: 1",
        "  row errors: would remove 2",
        "  stored files: would remove 1 (3 KiB)",
        "  work files of ended jobs: would remove 0 (0 bytes)",
        "  unfinished uploads and parses: would remove 0 (0 bytes)",
        "would remove 3 KiB in all",
        "before-images of imports ended over 30 days ago: would remove 0 (0 bytes)",
    ]
    assert Path(file.uri).exists() and error_count(job_id) == 2
