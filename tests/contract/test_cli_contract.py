"""The items sheet contract, checked rule by rule through the real `importer import` CLI.

Each test builds its files in `tmp_path`, runs `importer import FILE --json` against its
own `IMPORTER_DATA_DIR`, reads the JSON report on the last line of stdout and looks at the
`item` table of the SQLite database, as a user would. The rules about writing run on a
real PostgreSQL too (`@BOTH_DATABASES`), where the batch merge is a different statement.

The command runs in this process, its import as the `import-items` flow's steps without a
Prefect flow run (`run_here_without_prefect`; the parse child is a real process), so these
cases need no Prefect server. `test_cli_processes.py` runs real `importer` processes and
imports both ways, with and without the flow run, comparing what the user gets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.contract.workbooks import (
    ErrorValue,
    Formula,
    Rows,
    write_csv,
    write_encrypted_ole2,
    write_ods,
    write_plain_zip,
    write_png,
    write_random_bytes,
    write_raw_xlsx,
    write_truncated_xlsx,
    write_xls,
    write_xlsx,
    write_xlsx_claiming_4e9_shared_strings,
    write_xlsx_with_a_cell_at_xfd1048576,
    write_zip_bomb_xlsx,
)

pytestmark = pytest.mark.subprocess  # the parse child

# --- running the CLI ---------------------------------------------------------------------

# Runs the installed `importer` entry point inside this interpreter (so it works under
# `uv run pytest`) and reports the peak memory of the process and its children on stderr.
_RUNNER = """
import resource, sys
try:
    from cli.main import app
    app()
finally:
    _peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    sys.stderr.write(f"\\n[contract-test] peak_rss_kib={_peak}\\n")
"""

REPORT_KEYS = {
    "job_id",
    "status",
    "total_rows",
    "processed_rows",
    "percent",
    "created",
    "updated",
    "unchanged",
    "failed",
    "error",
    "warnings",
    "dry_run",
    "on_error",
    "sheet",
    "elapsed_s",
    "rows_per_s",
    "errors",
}
FIELDS = ("sku", "name", "description", "category", "unit", "price", "quantity", "barcode")
RUN_TIMEOUT_S = 240


@dataclass
class Run:
    """One finished `importer import` process."""

    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any]
    elapsed_s: float
    peak_rss_kib: int | None

    def describe(self) -> str:
        """Enough of the output to understand a failed assertion."""
        return (
            f"exit={self.returncode}\nreport={json.dumps(self.report, indent=1)[:4000]}\n"
            f"stderr tail:\n{self.stderr[-3000:]}"
        )


def run_importer(
    file: Path,
    data_dir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT_S,
) -> Run:
    """Run `importer import FILE --json ARGS...` against `data_dir` and parse its report."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTER_")}
    environ["IMPORTER_DATA_DIR"] = str(data_dir)
    environ.update(env or {})
    cmd = [sys.executable, "-c", _RUNNER, "import", str(file), "--json", *args]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=data_dir.parent,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(
            f"importer did not finish within {timeout} s\n"
            f"stderr tail:\n{err.decode('utf-8', 'replace')[-3000:]}"
        )
    elapsed = time.monotonic() - started
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    peak = re.findall(r"\[contract-test\] peak_rss_kib=(\d+)", stderr)
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(
            f"no JSON object on the last line of stdout (exit {proc.returncode})\n"
            f"stdout tail:\n{stdout[-2000:]}\nstderr tail:\n{stderr[-3000:]}"
        )
    assert isinstance(report, dict), stdout[-2000:]
    run = Run(proc.returncode, stdout, stderr, report, elapsed, int(peak[-1]) if peak else None)
    check_report_shape(run)
    return run


Importer = Callable[..., Run]


@pytest.fixture(scope="session")
def prefect_env(prefect_server: str) -> dict[str, str]:
    """Environment that points CLI subprocesses at the session's Prefect server; a test
    that asks for it may also run `importer` with `process=True` or `prefect=True`.

    Without an API URL each `importer import` process starts (and stops) its own temporary
    Prefect server, about 15 s per run; the flow itself still runs inside the CLI process.
    """
    return {"PREFECT_API_URL": prefect_server}


@pytest.fixture
def data_dir(tmp_path: Path, sqlite_template: Path) -> Path:
    """This test's data dir, as the first `importer import` into it leaves it: holding an
    empty database migrated to the newest schema (a copy of the run's template). Tests of
    that first import itself (`test_cli_processes.py`) start from a new, empty dir."""
    path = tmp_path / "var"
    path.mkdir()
    shutil.copyfile(sqlite_template, path / "importer.db")
    return path


def run_here_without_prefect(job_id: uuid.UUID, *, as_json: bool) -> None:
    """`cli.review.run_here` without a Prefect flow run: the flow's steps
    (`itemsheet.runs.running.attempt`, which the flow calls with its load and write tasks) with
    the load and write steps called directly, and a previewed job left to wait for its
    review with no run, as the flow leaves it when run in its caller's process.

    What the flow adds is Prefect's: a flow run and its state, artifacts, the writer's
    retries after a database hiccup and the hooks that settle a job whose run crashed;
    `test_cli_processes.py` runs imports both ways and compares what the user gets.
    """
    from cli.progress import run_followed
    from cli.review import err
    from itemsheet.runs import running

    def write(key: uuid.UUID, attempt: int, batches: int) -> bool:
        return running.write(key, attempt, batches, lambda percent, total: None)

    def run() -> None:
        end, _ = running.attempt(job_id, None, load=running.load, write=write)
        if end is running.End.REVIEW:
            running.await_review(job_id, run_ended=True)

    run_followed(job_id, run, err, quiet=as_json and not err.is_terminal)


@contextmanager
def cli_in_process(data_dir: Path, env: Mapping[str, str], *, prefect: bool) -> Iterator[Any]:
    """`app` (the `importer` command) to invoke in this process against `data_dir`, with
    `env`'s `IMPORTER_` settings; its imports run as a Prefect flow run (`prefect`, against
    the session's server) or as the flow's steps without one (`run_here_without_prefect`)."""
    from unittest import mock

    # Prefect's log handlers bind to sys.stderr when Prefect is first imported: do that
    # here, not inside CliRunner, whose captured streams close after each call.
    import flows.import_items  # noqa: F401
    from cli import review
    from cli.main import app
    from db.session import reset_engines
    from settings import get_settings

    saved = dict(os.environ)
    runner = review.run_here if prefect else run_here_without_prefect
    try:
        for name in [k for k in os.environ if k.startswith("IMPORTER_")]:
            del os.environ[name]
        os.environ["IMPORTER_DATA_DIR"] = str(data_dir)
        os.environ.update({k: v for k, v in env.items() if k.startswith("IMPORTER_")})
        get_settings.cache_clear()
        reset_engines()
        with mock.patch.object(review, "run_here", runner):
            yield app
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        reset_engines()


def run_importer_in_process(
    file: Path,
    data_dir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    prefect: bool = False,
) -> Run:
    """The same command, run by this test process (most rules do not need a new process),
    without a Prefect flow run unless `prefect` (see `cli_in_process`).

    Prefect's own log lines go to the test process's stderr here; tests about what the
    terminal shows, about memory, or about several processes use `run_importer`.
    """
    from typer.testing import CliRunner

    with cli_in_process(data_dir, env or {}, prefect=prefect) as app:
        started = time.monotonic()
        result = CliRunner().invoke(app, ["import", str(file), "--json", *args])
        elapsed = time.monotonic() - started
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(
            f"no JSON object on the last line of stdout (exit {result.exit_code})\n"
            f"stdout tail:\n{result.stdout[-2000:]}\nstderr tail:\n{result.stderr[-3000:]}"
        )
    run = Run(result.exit_code, result.stdout, result.stderr, report, elapsed, None)
    check_report_shape(run)
    return run


# Which database a data dir's imports go to, when it is not the embedded SQLite.
_DATABASE_URLS: dict[Path, str] = {}

BOTH_DATABASES = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database imports write to: SQLite unless a test is marked `@BOTH_DATABASES`."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def importer(data_dir: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Importer]:
    """`importer(file, *args, env=..., process=False, prefect=False)` runs the CLI against
    this test's data dir: in this process (without a Prefect flow run, or with one when
    `prefect`), or with `process=True` as a real `importer` process. A test that passes
    `process` or `prefect` asks for `prefect_env` too (the session's Prefect server)."""
    database: dict[str, str] = {}
    if backend == "postgresql":
        from devtools import postgres

        # A copy of the database `importer db upgrade` migrated, as before a PostgreSQL is used.
        server = request.getfixturevalue("postgres_server")
        template = request.getfixturevalue("postgres_template")
        name = f"contract_{uuid.uuid4().hex[:16]}"
        url = postgres.create_database(server, name, template=template)
        database = {"IMPORTER_DATABASE_URL": url}
        _DATABASE_URLS[data_dir] = url
    prefect_env: dict[str, str] | None = None
    if "prefect_env" in request.fixturenames:
        prefect_env = request.getfixturevalue("prefect_env")

    def run(
        file: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        process: bool = False,
        prefect: bool = False,
        **kwargs: Any,
    ) -> Run:
        merged = {**database, **(env or {})}
        if process or prefect:
            assert prefect_env is not None, "a test that runs Prefect asks for `prefect_env`"
        if process:
            assert prefect_env is not None
            return run_importer(file, data_dir, *args, env={**prefect_env, **merged}, **kwargs)
        return run_importer_in_process(file, data_dir, *args, env=merged, prefect=prefect)

    yield run
    _DATABASE_URLS.pop(data_dir, None)


# --- reading the database ------------------------------------------------------------------


def raw_items(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Every stored item row by SKU, all columns, exactly as stored."""
    if data_dir in _DATABASE_URLS:
        return _postgres_items(_DATABASE_URLS[data_dir])
    db = data_dir / "importer.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    try:
        con.row_factory = sqlite3.Row
        try:
            rows = con.execute("SELECT * FROM item").fetchall()
        except sqlite3.OperationalError:
            return {}
    finally:
        con.close()
    return {row["sku"]: dict(row) for row in rows}


def _postgres_items(url: str) -> dict[str, dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, row_factory=dict_row) as con:
        try:
            rows = con.execute("SELECT * FROM item").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return {row["sku"]: dict(row) for row in rows}


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def items(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The imported fields of every stored item by SKU; price as a Decimal."""
    out = {}
    for sku, row in raw_items(data_dir).items():
        values = {f: row[f] for f in FIELDS if f != "sku"}
        values["price"] = _decimal(values["price"])
        out[sku] = values
    return out


def item(
    name: str,
    *,
    description: str | None = None,
    category: str | None = None,
    unit: str | None = None,
    price: str | None = None,
    quantity: int | None = None,
    barcode: str | None = None,
) -> dict[str, Any]:
    """The expected stored fields of one item (price given as decimal text)."""
    return {
        "name": name,
        "description": description,
        "category": category,
        "unit": unit,
        "price": _decimal(price),
        "quantity": quantity,
        "barcode": barcode,
    }


# --- checking reports ------------------------------------------------------------------------


def check_report_shape(run: Run) -> None:
    """Every report has the documented keys and types; errors are well-formed records."""
    report = run.report
    missing = REPORT_KEYS - report.keys()
    assert not missing, f"report lacks {sorted(missing)}\n{run.describe()}"
    ended = ("completed", "failed", "cancelled", "awaiting_review")
    assert report["status"] in ended, run.describe()
    assert isinstance(report["warnings"], list), run.describe()
    assert all(isinstance(w, str) for w in report["warnings"]), run.describe()
    assert isinstance(report["errors"], list), run.describe()
    assert len(report["errors"]) <= 100, run.describe()
    for record in report["errors"]:
        assert {"row", "column", "value", "message"} <= record.keys(), record
        assert isinstance(record["row"], int), record
        assert record["column"] is None or record["column"] in FIELDS, record
        assert isinstance(record["message"], str), record
        assert record["message"].strip(), record
        assert record["value"] is None or isinstance(record["value"], str), record
        assert record["value"] is None or len(record["value"]) <= 200, record
    assert isinstance(report["dry_run"], bool), run.describe()
    assert report["on_error"] in ("skip", "abort"), run.describe()
    assert isinstance(report["job_id"], str), run.describe()
    assert report["job_id"], run.describe()
    expected_exit = {"completed": 0, "failed": 1}.get(report["status"])
    if expected_exit is not None:
        assert run.returncode == expected_exit, run.describe()


def assert_completed(
    run: Run,
    *,
    created: int = 0,
    updated: int = 0,
    unchanged: int = 0,
    failed: int = 0,
    skipped: int = 0,
) -> None:
    """The job completed with exactly these counts, which add up to `total_rows`."""
    report = run.report
    assert report["status"] == "completed", run.describe()
    assert run.returncode == 0, run.describe()
    assert report["error"] is None, run.describe()
    expected = {
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "skipped": skipped,
        "failed": failed,
    }
    counts = {k: report[k] for k in expected}
    assert counts == expected, run.describe()
    assert report["total_rows"] == sum(expected.values()), run.describe()
    assert report["processed_rows"] == report["total_rows"], run.describe()
    if report["total_rows"]:
        assert float(report["percent"]) == pytest.approx(100.0), run.describe()


def assert_one_line(reason: Any, run: Run) -> str:
    """A user-facing reason: one non-empty line, no traceback."""
    assert isinstance(reason, str), run.describe()
    assert reason.strip(), run.describe()
    assert "\n" not in reason, run.describe()
    assert "\r" not in reason, run.describe()
    assert "Traceback" not in reason, run.describe()
    return reason


def assert_failed(run: Run) -> str:
    """The job failed with exit code 1 and a one-line reason, which is returned."""
    assert run.report["status"] == "failed", run.describe()
    assert run.returncode == 1, run.describe()
    return assert_one_line(run.report["error"], run)


def errors_by_row(run: Run) -> dict[int, dict[str, Any]]:
    """The error records by row; the contract has one record per failed row."""
    rows = [e["row"] for e in run.report["errors"]]
    assert len(rows) == len(set(rows)), f"more than one record for a row\n{run.describe()}"
    return {e["row"]: e for e in run.report["errors"]}


def assert_row_error(run: Run, row: int, column: str | None, *mentions: str) -> dict[str, Any]:
    """Row `row` failed in `column`, and its message mentions each of `mentions`."""
    by_row = errors_by_row(run)
    assert row in by_row, f"no error for row {row}\n{run.describe()}"
    record = by_row[row]
    assert record["column"] == column, record
    for text in mentions:
        assert text.lower() in record["message"].lower(), record
    return record


# --- the files -----------------------------------------------------------------------------

HEADER = ["SKU", "Name", "Description", "Category", "Unit", "Price", "Quantity", "Barcode"]
DATA = [
    ["A-001", "Widget", "A small widget, blue", "Tools", "pcs", 12.5, 10, "5901234123457"],
    ["A-002", "Gadget", None, "Tools", "box", 19.99, 0, None],
    ["A-003", "Gizmo", 'Says "hi"; loud', None, None, 0.1, 3, "4006381333931"],
]
EXPECTED = {
    "A-001": item(
        "Widget",
        description="A small widget, blue",
        category="Tools",
        unit="pcs",
        price="12.5",
        quantity=10,
        barcode="5901234123457",
    ),
    "A-002": item("Gadget", category="Tools", unit="box", price="19.99", quantity=0),
    "A-003": item(
        "Gizmo", description='Says "hi"; loud', price="0.1", quantity=3, barcode="4006381333931"
    ),
}

Builder = Callable[[Path, Rows], Path]

FORMATS: dict[str, tuple[Builder, str]] = {
    "xlsx": (write_xlsx, "items.xlsx"),
    "xlsm": (partial(write_raw_xlsx, macro_enabled=True), "items.xlsm"),
    "xls": (write_xls, "items.xls"),
    "ods": (write_ods, "items.ods"),
    "csv-comma": (write_csv, "items.csv"),
    "csv-semicolon": (partial(write_csv, delimiter=";"), "items.csv"),
    "csv-crlf": (partial(write_csv, crlf=True), "items.csv"),
    "csv-bom-crlf-semicolon": (partial(write_csv, delimiter=";", bom=True, crlf=True), "items.csv"),
    "csv-bom-tab": (partial(write_csv, delimiter="\t", bom=True), "items.csv"),
}
SPREADSHEETS = ["xlsx", "xls", "ods"]
XLSX_AND_CSV = ["xlsx", "csv-comma"]


def build(fmt: str, tmp_path: Path, rows: Rows, name: str | None = None) -> Path:
    """Write `rows` in format `fmt` under `tmp_path` (optionally with another file name)."""
    builder, default_name = FORMATS[fmt]
    return builder(tmp_path / (name or default_name), rows)


# =============================================================================================
# Files
# =============================================================================================


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "csv-crlf"])
def test_every_accepted_format_imports_the_same_items(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(build(fmt, tmp_path, [HEADER, *DATA]))
    assert_completed(run, created=3)
    assert run.report["errors"] == []
    assert run.report["dry_run"] is False
    assert run.report["on_error"] == "skip"
    assert items(data_dir) == EXPECTED


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("xlsx", "items.csv"),
        ("csv-semicolon", "items.xlsx"),
        ("xls", "items.xlsx"),
        ("ods", "items.xls"),
        ("xlsm", "items"),
    ],
)
def test_format_is_decided_by_the_bytes_not_the_extension(
    fmt: str, name: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(build(fmt, tmp_path, [HEADER, *DATA], name=name))
    assert_completed(run, created=3)
    assert items(data_dir) == EXPECTED


def assert_refused_cleanly(run: Run, data_dir: Path) -> str:
    """Failed with a one-line reason and nothing written."""
    reason = assert_failed(run)
    assert items(data_dir) == {}
    return reason


@pytest.mark.parametrize(
    ("builder", "name"),
    [
        (write_png, "items.xlsx"),
        (write_random_bytes, "items.csv"),
    ],
    ids=["png-as-xlsx", "random-as-csv"],
)
def test_unsupported_file_is_refused_naming_the_accepted_formats(
    builder: Callable[[Path], Path],
    name: str,
    tmp_path: Path,
    importer: Importer,
    data_dir: Path,
) -> None:
    run = importer(builder(tmp_path / name))
    reason = assert_refused_cleanly(run, data_dir).lower()
    assert "xlsx" in reason, run.describe()
    assert "csv" in reason, run.describe()


def _empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda d: write_truncated_xlsx(d / "items.xlsx", [HEADER, *DATA * 50]),
            id="truncated-xlsx",
        ),
        pytest.param(lambda d: write_plain_zip(d / "items.xlsx"), id="zip-without-workbook"),
        pytest.param(lambda d: _empty_file(d / "items.xlsx"), id="empty-file"),
    ],
)
def test_corrupt_or_truncated_file_fails_with_a_one_line_reason_and_writes_nothing(
    make: Callable[[Path], Path], tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(make(tmp_path))
    assert_refused_cleanly(run, data_dir)


def test_corrupt_file_leaves_existing_items_untouched(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "first.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    changed = [[*row[:5], 999, *row[6:]] for row in DATA]
    run = importer(write_truncated_xlsx(tmp_path / "second.xlsx", [HEADER, *changed * 40]))
    assert_failed(run)
    assert raw_items(data_dir) == before


@pytest.mark.parametrize("name", ["items.xlsx"])
def test_password_protected_workbook_is_refused(
    name: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(write_encrypted_ole2(tmp_path / name))
    reason = assert_refused_cleanly(run, data_dir)
    assert "workbook is password-protected" in reason, run.describe()


def test_decompressed_size_limit_is_configurable(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    bomb = write_zip_bomb_xlsx(tmp_path / "bomb.xlsx", uncompressed_bytes=40_000_000)
    run = importer(bomb, env={"IMPORTER_MAX_UNCOMPRESSED_BYTES": str(5_000_000)})
    assert_refused_cleanly(run, data_dir)


def test_ordinary_workbook_over_a_lowered_decompressed_limit_fails(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    # Nothing suspicious about the ratio here: only the absolute limit can refuse it.
    path = write_xlsx(tmp_path / "items.xlsx", [HEADER, *DATA])
    run = importer(path, env={"IMPORTER_MAX_UNCOMPRESSED_BYTES": "1000"})
    assert_refused_cleanly(run, data_dir)


@pytest.mark.parametrize("fmt", ["csv-comma"])
def test_file_over_the_size_limit_fails(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    path = build(fmt, tmp_path, [HEADER, *DATA])
    assert path.stat().st_size > 200
    run = importer(path, env={"IMPORTER_MAX_UPLOAD_BYTES": "200"})
    assert_refused_cleanly(run, data_dir)


def test_cell_count_limit_is_enforced(tmp_path: Path, importer: Importer, data_dir: Path) -> None:
    rows = [HEADER, *[[f"S{i}", f"Name {i}", None, None, None, i, i, None] for i in range(50)]]
    run = importer(write_xlsx(tmp_path / "items.xlsx", rows), env={"IMPORTER_MAX_CELLS": "20"})
    assert_refused_cleanly(run, data_dir)


@pytest.mark.parametrize(
    "builder",
    [write_xlsx_claiming_4e9_shared_strings, write_xlsx_with_a_cell_at_xfd1048576],
    ids=["shared-strings-uniqueCount-4e9", "cells-at-A1-and-XFD1048576"],
)
def test_tiny_files_that_crash_the_parser_fail_the_job_cleanly(
    builder: Callable[[Path, Rows], Path], tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    # Both are known to abort a process from inside the Rust parser; the job must still
    # end failed with a reason, and the CLI must still print its report.
    run = importer(builder(tmp_path / "items.xlsx", [HEADER, *DATA]), timeout=180)
    assert_refused_cleanly(run, data_dir)
    assert run.elapsed_s < 120, run.describe()


def test_missing_file_fails_with_a_full_report(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(tmp_path / "no-such-file.xlsx")
    assert_refused_cleanly(run, data_dir)


def test_csv_in_a_windows_code_page_reads_as_its_writer_saw_it(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    # Contract v2: refused before as "not UTF-8"; more cases in test_text_and_numbers.py.
    path = tmp_path / "items.csv"
    path.write_bytes("SKU;Name\nC-1;Café crème\nC-2;Größe 10\n".encode("cp1252"))
    run = importer(path)
    assert_completed(run, created=2)
    assert {sku: v["name"] for sku, v in items(data_dir).items()} == {
        "C-1": "Café crème",
        "C-2": "Größe 10",
    }


# =============================================================================================
# Sheet and header
# =============================================================================================

SHEETS = {
    "Items": [HEADER, DATA[0]],
    "Prices": [["SKU", "Name", "Price"], ["P-1", "From prices", 3]],
}


@pytest.mark.parametrize("builder", [write_xlsx], ids=["openpyxl"])
def test_hidden_first_sheet_is_skipped_by_default(
    builder: Callable[..., Path], tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    sheets = {"Secret": [["SKU", "Name"], ["H-1", "Hidden item"]], **SHEETS}
    run = importer(builder(tmp_path / "book.xlsx", sheets=sheets, hidden={"Secret"}))
    assert_completed(run, created=1)
    assert set(items(data_dir)) == {"A-001"}


@pytest.mark.parametrize(("option", "expected"), [(None, "A-001"), ("Prices", "P-1"), ("1", "P-1")])
def test_sheet_option_picks_a_sheet_by_name_or_zero_based_index_default_first(
    option: str | None, expected: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    args = ("--sheet", option) if option is not None else ()
    run = importer(write_xlsx(tmp_path / "book.xlsx", sheets=SHEETS), *args)
    assert_completed(run, created=1)
    assert set(items(data_dir)) == {expected}


@pytest.mark.parametrize("option", ["Nope", "5"])
def test_unknown_sheet_fails_listing_the_sheets(
    option: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(write_xlsx(tmp_path / "book.xlsx", sheets=SHEETS), "--sheet", option)
    reason = assert_failed(run)
    assert f"sheet '{option}' not found; sheets: Items, Prices" in reason, run.describe()
    assert items(data_dir) == {}


def test_sheet_option_prefers_a_sheet_named_like_a_number(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    # Sheets named after years are common; "--sheet 2024" means the sheet called 2024.
    sheets = {
        "2023": [["SKU", "Name"], ["Y-2023", "Last year"]],
        "2024": [["SKU", "Name"], ["Y-2024", "This year"]],
    }
    run = importer(write_xlsx(tmp_path / "book.xlsx", sheets=sheets), "--sheet", "2024")
    assert_completed(run, created=1)
    assert set(items(data_dir)) == {"Y-2024"}


@pytest.mark.parametrize("fmt", ["xlsx", "ods", "csv-comma"])
def test_title_and_blank_rows_above_the_header_are_ignored_and_rows_keep_excel_numbers(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["Item catalogue 2024"],
        ["Exported by the ERP", None, "do not edit"],
        [],
        HEADER,
        DATA[0],  # row 5
        [],  # row 6, fully empty
        ["B-1", "Bad price", None, None, None, "abc", 1, None],  # row 7
        ["B-2", "Bad quantity", None, None, None, 1, -4, None],  # row 8
        DATA[1],  # row 9
    ]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=2, failed=2)
    assert set(errors_by_row(run)) == {7, 8}
    assert_row_error(run, 7, "price")
    assert_row_error(run, 8, "quantity")
    assert items(data_dir) == {k: EXPECTED[k] for k in ("A-001", "A-002")}


@pytest.mark.parametrize("fmt", ["xlsx", "ods"])
def test_blank_rows_and_columns_before_the_table_keep_excel_row_numbers(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    # The table starts at B4: rows 1-3 and column A are empty, so the sheet's used range
    # does not start at A1.
    bad = ["B-1", "Bad price", None, None, None, "abc", 1, None]
    rows = [[], [], [], [None, *HEADER], [None, *DATA[0]], [None, *bad], [], [None, *DATA[1]]]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=2, failed=1)
    assert set(errors_by_row(run)) == {6}
    assert_row_error(run, 6, "price")
    assert items(data_dir) == {k: EXPECTED[k] for k in ("A-001", "A-002")}


def test_duplicate_report_uses_excel_row_numbers_when_the_table_is_offset(
    tmp_path: Path, importer: Importer
) -> None:
    rows = [
        [],
        [None, "Catalogue"],
        [],
        [None, "SKU", "Name"],
        [None, "D-1", "First"],
        [None, "D-1", "Second"],
    ]
    run = importer(write_xlsx(tmp_path / "items.xlsx", rows))
    assert_completed(run, created=1, failed=1)
    assert assert_row_error(run, 6, "sku")["message"] == "duplicate SKU 'D-1' (first on row 5)"


def test_header_on_row_20_is_found(tmp_path: Path, importer: Importer, data_dir: Path) -> None:
    rows = [[f"note {i}"] for i in range(1, 20)] + [HEADER, DATA[0]]
    run = importer(write_xlsx(tmp_path / "items.xlsx", rows))
    assert_completed(run, created=1)
    assert items(data_dir) == {"A-001": EXPECTED["A-001"]}


NO_HEADER = {
    "header-row-21": [[f"note {i}"] for i in range(1, 21)] + [HEADER, DATA[0]],
    "no-sku-column": [["Name", "Price"], ["Widget", 3]],
    "notes-only": [["Item catalogue"], [], ["just", "some", "notes"]],
    "empty-sheet": [],
}


@pytest.mark.parametrize(
    ("fmt", "rows"),
    [
        pytest.param(fmt, NO_HEADER[name], id=f"{fmt}-{name}")
        for fmt, name in [
            ("xlsx", "header-row-21"),
            ("xlsx", "no-sku-column"),
            ("xlsx", "empty-sheet"),
            ("csv-comma", "no-sku-column"),
            ("csv-comma", "notes-only"),
        ]
    ],
)
def test_without_a_header_holding_an_sku_column_the_job_fails(
    rows: Rows, fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(build(fmt, tmp_path, rows))
    reason = assert_failed(run).lower()
    assert "header" in reason, run.describe()
    assert "sku" in reason, run.describe()
    assert items(data_dir) == {}


HEADER_VARIANTS = [
    # Header cells in the order sku, name, description, category, unit, price, quantity, barcode.
    ["Item No.", "Product Name", "Details", "Item Group", "UoM", "Unit_Price", " qty ", "EAN"],
    ["SKU*", "Name*", "desc", "GROUP", "Unit of Measure", "UNIT-PRICE", "On Hand", "UPC"],
    [
        "  item code ",
        "TITLE",
        "Description",
        "category",
        "unit_of_measure",
        "sales price",
        "Stock",
        "GTIN",
    ],
    ["Part Number", "Item Name", "DETAILS", "Category*", "unit", "unit.price", "QTY", "barcode"],
    ["Article", "name", "Desc", "item-group", "UOM", "Price", "Quantity", "ean"],
    ["Product Code", "NAME", "description", "Group", "Unit", "Sales_Price", "on-hand", "upc"],
    ["Code", "Name", "Details", "Category", "unit of measure", "unit price", "stock", "Gtin"],
    ["Item_Number", "item name", "desc", "group", "uom", "PRICE", "qty", "Barcode*"],
]
SAMPLE = {
    "sku": "H-1",
    "name": "Hammer",
    "description": "Steel",
    "category": "Tools",
    "unit": "pcs",
    "price": 7.25,
    "quantity": 4,
    "barcode": "12345670",
}


@pytest.mark.parametrize("header", HEADER_VARIANTS, ids=["|".join(h) for h in HEADER_VARIANTS])
def test_header_spelling_variants_are_recognised(
    header: list[str], tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [["Catalogue"], header, [SAMPLE[f] for f in FIELDS]]
    run = importer(write_xlsx(tmp_path / "items.xlsx", rows))
    assert_completed(run, created=1)
    assert run.report["warnings"] == [], run.describe()
    assert items(data_dir) == {
        "H-1": item(
            "Hammer",
            description="Steel",
            category="Tools",
            unit="pcs",
            price="7.25",
            quantity=4,
            barcode="12345670",
        )
    }


def test_errors_name_the_canonical_field_whatever_the_header_spelling(
    tmp_path: Path, importer: Importer
) -> None:
    rows = [
        ["Item No.", "Product Name", "Unit_Price", " qty "],
        ["X-1", "Bad", "abc", "2"],
        ["X-2", "Bad qty", 1, "lots"],
    ]
    run = importer(write_xlsx(tmp_path / "items.xlsx", rows))
    assert_completed(run, failed=2)
    assert_row_error(run, 2, "price")
    assert_row_error(run, 3, "quantity")


@pytest.mark.parametrize(
    ("fmt", "header"),
    [("xlsx", ["SKU", "Price", "Quantity"]), ("csv-comma", ["Item No.", "Description"])],
)
def test_a_sheet_without_a_name_column_is_not_refused_as_a_whole(
    fmt: str, header: list[str], tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    # Only SKU is required of every sheet; here every SKU is new, so each row fails alone.
    rows = [header, ["A-1", *["1"] * (len(header) - 1)], ["A-2", *["2"] * (len(header) - 1)]]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, failed=2)
    assert_row_error(run, 2, "name")
    assert_row_error(run, 3, "name")
    assert items(data_dir) == {}


@pytest.mark.parametrize(
    "header",
    [
        ["SKU", "Name", "Qty", "Stock"],
        ["SKU", "Name", "Price", "Unit Price"],
    ],
)
def test_two_headers_for_the_same_field_fail_naming_both(
    header: list[str], tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [header, ["A-1", "B", "3", "4"]]
    run = importer(write_xlsx(tmp_path / "items.xlsx", rows))
    reason = assert_failed(run).lower()
    for name in header[2:]:
        assert name.lower() in reason, run.describe()
    assert items(data_dir) == {}


@pytest.mark.parametrize("fmt", ["xlsx"])
def test_unknown_columns_are_ignored_and_listed_as_warnings(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [["SKU", "Colour", "Name", "Internal Notes"], ["A-1", "red", "Apple", "#N/A"]]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=1)
    warnings = " ".join(run.report["warnings"])
    assert "Colour" in warnings, run.describe()
    assert "Internal Notes" in warnings, run.describe()
    assert items(data_dir) == {"A-1": item("Apple")}


# =============================================================================================
# Cell values
# =============================================================================================


@pytest.mark.parametrize("fmt", SPREADSHEETS)
def test_numbers_in_text_columns_become_text_without_fraction_or_exponent(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU", "Name", "Barcode", "Category", "Unit"],
        [12345, "Int SKU", 5901234123457, 7, 1],
        [777.0, "Float SKU", 4006381333931.0, 2024.0, 12.0],
        ["000123", "Leading zeros", "0012345678905", "007", "01"],
        [12.5, "Fraction SKU", 96385074, 0.5, None],
        [123456789012, "Long SKU", 123456789012345, None, None],
    ]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=5)
    stored = {sku: (v["barcode"], v["category"], v["unit"]) for sku, v in items(data_dir).items()}
    assert stored == {
        "12345": ("5901234123457", "7", "1"),
        "777": ("4006381333931", "2024", "12"),
        "000123": ("0012345678905", "007", "01"),
        "12.5": ("96385074", "0.5", None),
        "123456789012": ("123456789012345", None, None),
    }


@pytest.mark.parametrize("fmt", ["csv-semicolon"])
@BOTH_DATABASES
def test_csv_text_is_kept_as_written(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU", "Name", "Barcode", "Category"],
        ["000123", "Leading zeros", "0012345678905", "1e5"],
        ["12345", "Digits", "5901234123457", "12.0"],
        ["  A-9  ", "  Padded name  ", "  ", "TRUE"],
    ]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=3)
    assert items(data_dir) == {
        "000123": item("Leading zeros", barcode="0012345678905", category="1e5"),
        "12345": item("Digits", barcode="5901234123457", category="12.0"),
        "A-9": item("Padded name", category="TRUE"),
    }


DATE_ISO = re.compile(r"^2024-03-15(T00:00(:00)?)?$")
DATETIME_ISO = re.compile(r"^2024-03-15T10:30(:00)?$")


@pytest.mark.parametrize(
    ("fmt", "title_row"), [("xlsx", False), ("xlsx", True), ("xls", False), ("ods", True)]
)
def test_dates_in_text_columns_become_iso_text(
    fmt: str, title_row: bool, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU", "Name", "Description", "Category"],
        ["D-1", "Date in text column", date(2024, 3, 15), datetime(2024, 3, 15, 10, 30)],
        ["D-2", "Plain text", "Just words", "Tools"],
    ]
    if fmt == "xls":
        rows[1][3] = date(2024, 3, 15)  # xlwt's single date style shows no time
    if title_row:
        rows.insert(0, ["Catalogue exported 2024-03-15"])
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=2)
    stored = items(data_dir)
    assert DATE_ISO.match(stored["D-1"]["description"] or ""), stored["D-1"]
    pattern = DATE_ISO if fmt == "xls" else DATETIME_ISO
    assert pattern.match(stored["D-1"]["category"] or ""), stored["D-1"]
    assert stored["D-2"]["description"] == "Just words"


@pytest.mark.parametrize("fmt", XLSX_AND_CSV)
@BOTH_DATABASES
def test_text_is_trimmed_and_whitespace_only_counts_as_empty(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU", "Name", "Description", "Unit"],
        ["  T-1 ", "  Trimmed  ", "   ", " pcs "],  # row 2
        ["   ", "No SKU", None, None],  # row 3
        ["T-3", "   ", "desc", None],  # row 4
        ["T-4", None, None, None],  # row 5
    ]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=1, failed=3)
    assert_row_error(run, 3, "sku")
    assert_row_error(run, 4, "name")
    assert_row_error(run, 5, "name")
    assert items(data_dir) == {"T-1": item("Trimmed", unit="pcs")}


PRICE_ROWS = [
    # (price cell, stored price or None for a row error)
    (12.5, "12.5"),
    ("1,234.50", "1234.5"),
    (" 7 ", "7"),
    ("12.5", "12.5"),
    (0, "0"),
    ("0.00", "0"),
    (1.23456, "1.2346"),
    (1234567.891, "1234567.891"),
    (-1, None),
    ("-3.50", None),
    ("abc", None),
    ("1.2.3", None),
    # Contract v2: a currency code or sign is dropped; a unit is not a currency.
    ("12 EUR", "12"),
    ("12 kg", None),
]


@pytest.mark.parametrize("fmt", XLSX_AND_CSV)
def test_price_accepts_numbers_and_numeric_text_and_rejects_the_rest(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [["SKU", "Name", "Price"]]
    rows += [[f"P-{i}", f"Priced {i}", cell] for i, (cell, _) in enumerate(PRICE_ROWS)]
    rows.append(["P-empty", "No price", None])
    run = importer(build(fmt, tmp_path, rows))
    bad = sum(1 for _, want in PRICE_ROWS if want is None)
    assert_completed(run, created=len(PRICE_ROWS) + 1 - bad, failed=bad)
    stored = items(data_dir)
    for i, (cell, want) in enumerate(PRICE_ROWS):
        excel_row = i + 2
        if want is None:
            record = assert_row_error(run, excel_row, "price")
            assert record["value"] is not None
            shown = {str(cell).strip()}
            if isinstance(cell, int | float):
                shown |= {str(float(cell)), str(int(cell))}
            assert record["value"].strip() in shown, record
            assert f"P-{i}" not in stored
        else:
            assert stored[f"P-{i}"]["price"] == Decimal(want), (cell, stored[f"P-{i}"])
    assert stored["P-empty"]["price"] is None


QUANTITY_ROWS = [
    (12, 12),
    (12.0, 12),
    ("12.0", 12),
    (" 7 ", 7),
    (0, 0),
    (1_000_000, 1_000_000),
    (2.5, None),
    ("2.5", None),
    (-1, None),
    ("-3", None),
    ("abc", None),
    ("7 pcs", None),
]


@pytest.mark.parametrize("fmt", XLSX_AND_CSV)
def test_quantity_accepts_whole_numbers_only(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [["SKU", "Name", "Qty"]]
    rows += [[f"Q-{i}", f"Counted {i}", cell] for i, (cell, _) in enumerate(QUANTITY_ROWS)]
    rows.append(["Q-empty", "No quantity", None])
    run = importer(build(fmt, tmp_path, rows))
    bad = sum(1 for _, want in QUANTITY_ROWS if want is None)
    assert_completed(run, created=len(QUANTITY_ROWS) + 1 - bad, failed=bad)
    stored = items(data_dir)
    for i, (cell, want) in enumerate(QUANTITY_ROWS):
        if want is None:
            assert_row_error(run, i + 2, "quantity")
            assert f"Q-{i}" not in stored, cell
        else:
            assert stored[f"Q-{i}"]["quantity"] == want, (cell, stored[f"Q-{i}"])
    assert stored["Q-empty"]["quantity"] is None


def test_quantity_too_large_to_store_is_a_row_error_not_a_crash(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU", "Name", "Quantity"],
        ["Q-1", "Huge", "99999999999999999999"],
        ["Q-2", "Fine", "5"],
    ]
    run = importer(write_csv(tmp_path / "items.csv", rows))
    assert_completed(run, created=1, failed=1)
    assert_row_error(run, 2, "quantity")
    assert items(data_dir) == {"Q-2": item("Fine", quantity=5)}


ERROR_CODES = ["#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!"]


def test_error_values_in_mapped_columns_are_row_errors_naming_the_value(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows: list[list[Any]] = [["SKU", "Name", "Price", "Quantity", "Notes"]]
    rows += [[f"E-{i}", "Err", ErrorValue(code), 1, None] for i, code in enumerate(ERROR_CODES)]
    rows.append(["E-name", ErrorValue("#REF!"), 1, 1, None])  # row 9
    rows.append(["E-qty", "Formula error", 1, Formula("1/0", ErrorValue("#DIV/0!")), None])  # 10
    rows.append(["E-ok", "Error only in an unknown column", 2, 3, ErrorValue("#N/A")])  # 11
    rows.append([ErrorValue("#N/A"), "Error in SKU", 2, 3, None])  # 12
    run = importer(write_raw_xlsx(tmp_path / "errors.xlsx", rows))
    assert_completed(run, created=1, failed=len(ERROR_CODES) + 3)
    for i, code in enumerate(ERROR_CODES):
        assert_row_error(run, i + 2, "price", code)
    assert_row_error(run, 9, "name", "#REF!")
    assert_row_error(run, 10, "quantity", "#DIV/0!")
    assert_row_error(run, 12, "sku", "#N/A")
    assert items(data_dir) == {
        "E-ok": item("Error only in an unknown column", price="2", quantity=3)
    }


def test_formulas_import_their_cached_values(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU", "Name", "Price", "Quantity", "Category", "Base"],
        [
            Formula('"F-"&"1"', "F-1"),
            Formula('UPPER("widget")', "WIDGET"),
            Formula("F2*2", 10),
            Formula("SUM(1,2)", 3),
            Formula('"Tools"', "Tools"),
            5,
        ],
        ["F-2", "Plain", Formula("F3/4", 1.25), Formula("F3", 8), None, 8],
    ]
    run = importer(write_raw_xlsx(tmp_path / "formulas.xlsx", rows))
    assert_completed(run, created=2)
    assert items(data_dir) == {
        "F-1": item("WIDGET", price="10", quantity=3, category="Tools"),
        "F-2": item("Plain", price="1.25", quantity=8),
    }


LIMITS = {"sku": 64, "name": 255, "description": 4000, "category": 100, "unit": 20, "barcode": 32}


@pytest.mark.parametrize("fmt", ["xlsx"])
def test_text_longer_than_its_limit_is_a_row_error(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    header = ["SKU", "Name", "Description", "Category", "Unit", "Barcode"]
    fields = ["sku", "name", "description", "category", "unit", "barcode"]
    rows: list[list[Any]] = [header]
    for n, field in enumerate(fields):
        for extra in (0, 1):
            row = [f"L-{n}-{extra}", "Limit", None, None, None, None]
            text = "x" * (LIMITS[field] + extra)
            row[fields.index(field)] = text
            rows.append(row)
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=len(fields), failed=len(fields))
    stored = items(data_dir)
    for n, field in enumerate(fields):
        ok_row, bad_row = 2 + 2 * n, 3 + 2 * n
        assert ok_row not in errors_by_row(run), field
        record = assert_row_error(run, bad_row, field)
        assert len(record["value"] or "") <= 200
        assert (record["value"] or "").startswith("x" * min(LIMITS[field], 150)), record
        if field != "sku":
            assert stored[f"L-{n}-0"][field] == "x" * LIMITS[field]
            assert f"L-{n}-1" not in stored
    assert "x" * 64 in stored


# =============================================================================================
# Rows
# =============================================================================================


@pytest.mark.parametrize("fmt", ["xlsx", "ods", "csv-crlf"])
def test_fully_empty_rows_are_skipped_and_not_counted(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        HEADER,
        [],
        DATA[0],
        [None] * 8,
        [],
        DATA[1],
        [],
        ["Z-1", "Zed", "x", None, None, "-1", None, None],
        [],
        [],
    ]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=2, failed=1)
    assert run.report["total_rows"] == 3
    assert_row_error(run, 8, "price")
    assert set(items(data_dir)) == {"A-001", "A-002"}


@pytest.mark.parametrize("fmt", ["xlsx"])
def test_rows_of_whitespace_only_are_empty_rows(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [HEADER, DATA[0], ["  ", " ", None, "   "], DATA[1]]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=2)
    assert run.report["total_rows"] == 2


@pytest.mark.parametrize(
    ("fmt", "rows"),
    [
        pytest.param("xlsx", [HEADER], id="xlsx-header-only"),
        pytest.param("ods", [["Catalogue"], [], HEADER, [], []], id="ods-header-and-blank-rows"),
        pytest.param(
            "csv-comma", [["Catalogue"], [], HEADER, [], []], id="csv-header-and-blank-rows"
        ),
    ],
)
def test_sheet_with_a_header_and_no_data_rows_is_an_empty_import(
    rows: Rows, fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run)
    assert run.report["total_rows"] == 0
    assert any("no data rows" in w.lower() for w in run.report["warnings"]), run.describe()
    assert items(data_dir) == {}


@pytest.mark.parametrize("fmt", XLSX_AND_CSV)
def test_later_occurrences_of_a_sku_are_duplicate_errors(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["Catalogue"],
        ["SKU", "Name", "Price"],
        ["A1", "First", 1],  # row 3
        ["B1", "Other", 2],  # row 4
        ["A1", "Second", 3],  # row 5
        [" A1 ", "Third, padded", 4],  # row 6
        ["a1", "Lower case is another SKU", 5],  # row 7
        ["B1", "Again", 6],  # row 8
    ]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, created=3, failed=3)
    for row in (5, 6):
        record = assert_row_error(run, row, "sku")
        assert record["message"] == "duplicate SKU 'A1' (first on row 3)", record
    assert assert_row_error(run, 8, "sku")["message"] == "duplicate SKU 'B1' (first on row 4)"
    assert items(data_dir) == {
        "A1": item("First", price="1"),
        "B1": item("Other", price="2"),
        "a1": item("Lower case is another SKU", price="5"),
    }


def test_error_report_is_capped_at_100_records_but_counts_every_failed_row(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU", "Name", "Price"],
        *[[f"S{i}", "Bad", "x"] for i in range(150)],
        ["OK", "Good", "1"],
    ]
    long_price = "9" * 150 + "abc" + "9" * 150
    rows[1][2] = long_price
    run = importer(write_csv(tmp_path / "items.csv", rows))
    assert_completed(run, created=1, failed=150)
    assert len(run.report["errors"]) == 100
    assert items(data_dir) == {"OK": item("Good", price="1")}
    # The value of a record is cut at 200 characters.
    record = assert_row_error(run, 2, "price")
    assert 0 < len(record["value"]) <= 200, record
    assert record["value"].startswith("9" * 150), record


def test_a_job_keeps_its_first_row_errors_up_to_the_cap_and_counts_every_failed_row(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU", "Name", "Price"],
        *[[f"S{i}", "Item", "1" if i % 3 == 0 else "x"] for i in range(30)],
    ]
    failing = [i + 2 for i in range(30) if i % 3]
    path = write_csv(tmp_path / "items.csv", rows)
    run = importer(path, "--batch-size", "4", env={"IMPORTER_MAX_ROW_ERRORS": "5"})
    assert_completed(run, created=10, failed=20)
    assert [e["row"] for e in run.report["errors"]] == failing[:5], run.describe()
    assert run.report["warnings"] == ["20 rows failed; the first 5 row errors are kept"]


# =============================================================================================
# Writing
# =============================================================================================


@pytest.mark.parametrize("fmt", ["xlsx", "ods", "csv-comma"])
@BOTH_DATABASES
def test_reimport_of_the_same_file_reports_all_unchanged_and_writes_nothing(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    path = build(fmt, tmp_path, [HEADER, *DATA])
    assert_completed(importer(path), created=3)
    before = raw_items(data_dir)
    run = importer(path)
    assert_completed(run, unchanged=3)
    assert raw_items(data_dir) == before  # updated_at included: nothing was written


@BOTH_DATABASES
def test_equal_values_written_differently_are_unchanged(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU", "Name", "Price", "Quantity"],
        ["W-1", "Widget", 12.5, 10],
        ["W-2", "Precise", 1.23456, 1],
    ]
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", rows)), created=2)
    before = raw_items(data_dir)
    # Same values, spelled the way a CSV export might: padding, trailing zeros, "10.0".
    again = [
        ["SKU", "Name", "Price", "Quantity"],
        [" W-1 ", " Widget ", "12.50", "10.0"],
        ["W-2", "Precise", "1.23456", " 1 "],
    ]
    run = importer(write_csv(tmp_path / "v2.csv", again))
    assert_completed(run, unchanged=2)
    assert raw_items(data_dir) == before


@BOTH_DATABASES
def test_changed_rows_are_updated_and_the_rest_unchanged(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    changed = [list(row) for row in DATA]
    changed[1][5] = 21.5
    changed.append(["A-004", "New", None, None, None, 1, 1, None])
    run = importer(write_xlsx(tmp_path / "v2.xlsx", [HEADER, *changed]))
    assert_completed(run, created=1, updated=1, unchanged=2)
    after = raw_items(data_dir)
    assert after["A-001"] == before["A-001"]
    assert after["A-003"] == before["A-003"]
    assert _decimal(after["A-002"]["price"]) == Decimal("21.5")
    assert set(after) == {"A-001", "A-002", "A-003", "A-004"}


@BOTH_DATABASES
def test_absent_columns_leave_stored_values_untouched(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    rows = [
        ["SKU", "Name", "Quantity"],
        ["A-001", "Widget", 99],  # quantity changes
        ["A-002", "Gadget", 0],  # same name and quantity: unchanged
        ["A-003", "Gizmo renamed", 3],
    ]
    run = importer(write_xlsx(tmp_path / "v2.xlsx", rows))
    assert_completed(run, updated=2, unchanged=1)
    assert raw_items(data_dir)["A-002"] == before["A-002"]
    expected = {sku: dict(values) for sku, values in EXPECTED.items()}
    expected["A-001"]["quantity"] = 99
    expected["A-003"]["name"] = "Gizmo renamed"
    assert items(data_dir) == expected


@pytest.mark.parametrize("fmt", XLSX_AND_CSV)
@BOTH_DATABASES
def test_sku_and_price_sheet_updates_only_prices(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    rows = [["SKU", "Price"], ["A-001", 13], ["A-002", 19.99], ["A-003", None]]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, updated=2, unchanged=1)
    after = raw_items(data_dir)
    assert after["A-002"] == before["A-002"]  # same price: not written at all
    expected = {sku: dict(values) for sku, values in EXPECTED.items()}
    expected["A-001"]["price"] = Decimal("13")
    expected["A-003"]["price"] = None  # an empty cell in a present column clears it
    assert items(data_dir) == expected


@BOTH_DATABASES
def test_new_sku_in_a_sheet_without_name_is_a_row_error_with_the_exact_message(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    rows = [
        ["SKU", "Quantity"],
        ["A-001", 11],  # row 2: updated
        ["NEW-1", 5],  # row 3: new, no name
        ["A-002", -1],  # row 4: invalid quantity
        ["A-003", 3],  # row 5: unchanged
        ["NEW-2", 6],  # row 6: new, no name
    ]
    run = importer(write_xlsx(tmp_path / "v2.xlsx", rows), "--batch-size", "2")
    assert_completed(run, updated=1, unchanged=1, failed=3)
    assert [e["row"] for e in run.report["errors"]] == [3, 4, 6]  # sheet order
    for row, sku in ((3, "NEW-1"), (6, "NEW-2")):
        record = assert_row_error(run, row, "name")
        assert record["message"] == f"name is required to create item '{sku}'"
    assert_row_error(run, 4, "quantity")
    assert set(items(data_dir)) == {"A-001", "A-002", "A-003"}
    assert items(data_dir)["A-001"] == {**EXPECTED["A-001"], "quantity": 11}


@BOTH_DATABASES
def test_empty_name_cell_keeps_the_name_of_an_existing_item_and_cannot_create_one(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    rows = [
        ["SKU", "Name", "Unit"],
        ["A-001", None, "pcs"],  # row 2: name kept, nothing else changes: unchanged
        ["A-002", "   ", "kg"],  # row 3: name kept, unit changes: updated
        ["NEW-1", None, "pcs"],  # row 4: new without a name
    ]
    run = importer(write_xlsx(tmp_path / "v2.xlsx", rows))
    assert_completed(run, updated=1, unchanged=1, failed=1)
    record = assert_row_error(run, 4, "name")
    assert record["message"] == "name is required to create item 'NEW-1'"
    stored = items(data_dir)
    assert stored["A-001"] == EXPECTED["A-001"]
    assert stored["A-002"] == {**EXPECTED["A-002"], "unit": "kg"}
    assert "NEW-1" not in stored


@BOTH_DATABASES
def test_abort_with_a_new_sku_without_name_writes_nothing_and_reports_every_error(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    rows = [
        ["SKU", "Price"],
        ["A-001", 11],  # row 2: valid update (12.50 before; within the guardrails)
        ["NEW-1", 2],  # row 3: new, no name
        ["A-002", "abc"],  # row 4: invalid price
    ]
    run = importer(write_xlsx(tmp_path / "v2.xlsx", rows), "--on-error", "abort")
    assert_failed(run)
    assert [e["row"] for e in run.report["errors"]] == [3, 4]
    assert assert_row_error(run, 3, "name")["message"] == "name is required to create item 'NEW-1'"
    assert_row_error(run, 4, "price")
    assert run.report["failed"] == 2
    assert raw_items(data_dir) == before
    # Existing SKUs alone need no name: the same sheet without its bad rows goes through.
    valid = write_xlsx(tmp_path / "v3.xlsx", rows[:2])
    assert_completed(importer(valid, "--on-error", "abort"), updated=1)


@BOTH_DATABASES
def test_dry_run_counts_new_skus_without_name_as_failed_and_writes_nothing(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    rows = [["SKU", "Quantity"], ["A-001", 11], ["NEW-1", 5], ["A-003", 3]]
    run = importer(write_xlsx(tmp_path / "v2.xlsx", rows), "--dry-run")
    assert_completed(run, updated=1, unchanged=1, failed=1)
    assert assert_row_error(run, 3, "name")["message"] == "name is required to create item 'NEW-1'"
    assert raw_items(data_dir) == before


def test_a_sheet_of_skus_alone_checks_which_items_exist_and_writes_nothing(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    skus = write_csv(tmp_path / "skus.csv", [["SKU"], ["A-001"], ["NEW-1"], ["A-003"]])
    for args in (("--dry-run",), ()):
        run = importer(skus, *args)
        assert_completed(run, unchanged=2, failed=1)
        message = assert_row_error(run, 3, "name")["message"]
        assert message == "name is required to create item 'NEW-1'"
    # A report whose only item column is "Code", below a block of titles, as published
    # statistics workbooks are: the same check.
    report = [
        ["Title:", "Attendances, monthly statistics"],
        [],
        ["Period:", "December 2022"],
        [],
        [None, None, "Attendances"],
        ["Code", "System", "Total attendances"],
        ["A-002", "North", 1437681],
        ["QJG", "East", 22031],
        ["A-001", "South", 36592],
    ]
    run = importer(write_xls(tmp_path / "report.xls", report))
    assert_completed(run, unchanged=2, failed=1)
    assert assert_row_error(run, 8, "name")["message"] == "name is required to create item 'QJG'"
    assert raw_items(data_dir) == before  # not even `updated_at` moved


@pytest.mark.parametrize("fmt", ["csv-comma"])
@BOTH_DATABASES
def test_empty_cell_in_a_present_optional_column_clears_the_stored_value(
    fmt: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    rows = [
        ["SKU", "Name", "Price", "Description", "Barcode"],
        ["A-001", "Widget", None, "   ", None],
        ["A-003", "Gizmo", "0.1", 'Says "hi"; loud', "4006381333931"],
    ]
    run = importer(build(fmt, tmp_path, rows))
    assert_completed(run, updated=1, unchanged=1)
    stored = items(data_dir)
    assert stored["A-001"] == item("Widget", category="Tools", unit="pcs", quantity=10)
    assert stored["A-002"] == EXPECTED["A-002"]
    assert stored["A-003"] == EXPECTED["A-003"]


@BOTH_DATABASES
def test_items_not_in_the_sheet_are_never_changed_or_deleted(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    run = importer(write_csv(tmp_path / "v2.csv", [["SKU", "Name"], ["A-002", "Renamed"]]))
    assert_completed(run, updated=1)
    after = raw_items(data_dir)
    assert after["A-001"] == before["A-001"]
    assert after["A-003"] == before["A-003"]
    assert after["A-002"]["name"] == "Renamed"


@BOTH_DATABASES
def test_key_is_the_trimmed_case_sensitive_sku(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    rows = [["SKU", "Name"], ["  A-001 ", "Widget"], ["a-001", "Lower-case twin"]]
    run = importer(write_xlsx(tmp_path / "v2.xlsx", rows))
    assert_completed(run, created=1, unchanged=1)
    stored = items(data_dir)
    assert stored["A-001"] == EXPECTED["A-001"]
    assert stored["a-001"] == item("Lower-case twin")


MIXED = [
    ["SKU", "Name", "Price", "Quantity"],
    ["M-1", "Good one", 1, 1],  # row 2
    ["M-2", "Bad price", -5, 1],  # row 3
    ["M-3", "Good two", 2, 2],  # row 4
    ["M-4", "Bad quantity", 3, 1.5],  # row 5
]


@pytest.mark.parametrize("args", [()], ids=["default"])
@BOTH_DATABASES
def test_on_error_skip_writes_valid_rows_and_reports_invalid_ones(
    args: tuple[str, ...], tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(write_xlsx(tmp_path / "mixed.xlsx", MIXED), *args)
    assert_completed(run, created=2, failed=2)
    assert run.report["on_error"] == "skip"
    assert_row_error(run, 3, "price")
    assert_row_error(run, 5, "quantity")
    assert items(data_dir) == {
        "M-1": item("Good one", price="1", quantity=1),
        "M-3": item("Good two", price="2", quantity=2),
    }


def test_on_error_abort_writes_nothing_and_fails_with_the_full_report(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(write_xlsx(tmp_path / "mixed.xlsx", MIXED), "--on-error", "abort")
    assert_failed(run)
    assert run.report["on_error"] == "abort"
    assert set(errors_by_row(run)) == {3, 5}
    assert run.report["failed"] == 2
    assert items(data_dir) == {}


@BOTH_DATABASES
def test_on_error_abort_leaves_existing_items_untouched(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    rows = [
        HEADER,
        [*DATA[0][:5], 99, *DATA[0][6:]],
        ["N-1", "New", None, None, None, 1, 1, None],
        ["N-2", "Broken", None, None, None, "abc", 1, None],
    ]
    run = importer(write_xlsx(tmp_path / "v2.xlsx", rows), "--on-error", "abort")
    assert_failed(run)
    assert_row_error(run, 4, "price")
    assert raw_items(data_dir) == before


def test_on_error_abort_with_a_valid_file_completes(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(write_xlsx(tmp_path / "items.xlsx", [HEADER, *DATA]), "--on-error", "abort")
    assert_completed(run, created=3)
    assert items(data_dir) == EXPECTED


def test_dry_run_reports_counts_and_errors_but_writes_nothing(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(write_xlsx(tmp_path / "mixed.xlsx", MIXED), "--dry-run")
    assert_completed(run, created=2, failed=2)
    assert run.report["dry_run"] is True
    assert set(errors_by_row(run)) == {3, 5}
    assert items(data_dir) == {}


@BOTH_DATABASES
def test_dry_run_against_stored_items_reports_updates_without_applying_them(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    assert_completed(importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3)
    before = raw_items(data_dir)
    rows = [HEADER, DATA[0], [*DATA[1][:5], 1, *DATA[1][6:]], ["N-1", "New"]]
    run = importer(write_xlsx(tmp_path / "v2.xlsx", rows), "--dry-run")
    assert_completed(run, created=1, updated=1, unchanged=1)
    assert run.report["dry_run"] is True
    assert raw_items(data_dir) == before


def test_dry_run_with_abort_reports_errors_and_writes_nothing(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(write_xlsx(tmp_path / "mixed.xlsx", MIXED), "--dry-run", "--on-error", "abort")
    assert run.report["status"] in ("completed", "failed"), run.describe()
    assert set(errors_by_row(run)) == {3, 5}
    assert items(data_dir) == {}


SEVEN = [
    ["SKU", "Name", "Price", "Quantity"],
    ["S-1", "One", 1, 1],  # row 2
    ["S-2", "Two", "bad", 2],  # row 3
    ["S-3", "Three", 3, 3],  # row 4
    ["S-4", "Four", 4, 4],  # row 5
    ["S-1", "One again", 5, 5],  # row 6: duplicate of row 2, in another batch
    ["S-6", "Six", 6, 6],  # row 7
    ["S-7", "Seven", 7, -7],  # row 8
]
SEVEN_STORED = {
    "S-1": item("One", price="1", quantity=1),
    "S-3": item("Three", price="3", quantity=3),
    "S-4": item("Four", price="4", quantity=4),
    "S-6": item("Six", price="6", quantity=6),
}


@pytest.mark.parametrize(
    ("fmt", "batch"), [("xlsx", None), ("xlsx", "2"), ("csv-comma", "1"), ("csv-comma", "3")]
)
@BOTH_DATABASES
def test_batch_size_does_not_change_the_outcome(
    fmt: str, batch: str | None, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    args = ("--batch-size", batch) if batch else ()
    run = importer(build(fmt, tmp_path, SEVEN), *args)
    assert_completed(run, created=4, failed=3)
    assert_row_error(run, 3, "price")
    dup = assert_row_error(run, 6, "sku")
    assert dup["message"] == "duplicate SKU 'S-1' (first on row 2)"
    assert_row_error(run, 8, "quantity")
    assert items(data_dir) == SEVEN_STORED


@pytest.mark.parametrize("batch", ["2"])
def test_abort_writes_no_batch_even_when_only_the_last_batch_is_invalid(
    batch: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [HEADER, *DATA, ["Z-9", "Broken", None, None, None, "abc", 1, None]]
    run = importer(
        write_xlsx(tmp_path / "items.xlsx", rows), "--batch-size", batch, "--on-error", "abort"
    )
    assert_failed(run)
    assert_row_error(run, 5, "price")
    assert items(data_dir) == {}


@pytest.mark.parametrize("batch", ["2"])
@BOTH_DATABASES
def test_reimport_in_small_batches_is_all_unchanged(
    batch: str, tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    path = write_xlsx(tmp_path / "items.xlsx", [HEADER, *DATA])
    assert_completed(importer(path, "--batch-size", batch), created=3)
    before = raw_items(data_dir)
    assert_completed(importer(path, "--batch-size", batch), unchanged=3)
    assert raw_items(data_dir) == before


def _many_rows(n: int, prefix: str = "K") -> list[list[Any]]:
    return [
        HEADER,
        *[
            [f"{prefix}-{i:05d}", f"Item {i}", None, "Bulk", "pcs", i / 4, i, None]
            for i in range(n)
        ],
    ]


@BOTH_DATABASES
def test_larger_file_in_batches_imports_every_row(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    run = importer(write_csv(tmp_path / "many.csv", _many_rows(2500)), "--batch-size", "300")
    assert_completed(run, created=2500)
    stored = items(data_dir)
    assert len(stored) == 2500
    assert stored["K-02499"]["price"] == Decimal("624.75")
    assert stored["K-00001"]["quantity"] == 1


# --- column mapping and review ---------------------------------------------------------

GERMAN_HEADER = ["Artikelnummer", "Bezeichnung", "Preis"]
GERMAN_MAPS = ("--map", "Artikelnummer=sku", "--map", "Bezeichnung=name", "--map", "Preis=price")


@BOTH_DATABASES
def test_headers_nobody_knows_import_by_map_options_and_later_by_the_saved_mapping(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    german = [GERMAN_HEADER, ["D-1", "Schraube", 0.1], ["D-2", "Mutter", 0.05]]
    # Without a mapping the sheet has no SKU column.
    refused = importer(write_xlsx(tmp_path / "de.xlsx", german))
    assert refused.report["status"] == "failed"
    assert refused.report["error"].startswith("no header row with an SKU column was found")

    run = importer(write_xlsx(tmp_path / "de.xlsx", german), *GERMAN_MAPS)
    assert_completed(run, created=2)
    assert items(data_dir)["D-1"]["name"] == "Schraube"

    # The same headers (in another order and case) need no --map any more.
    later = [
        ["PREIS", "artikelnummer", "Bezeichnung"],
        [0.2, "D-1", "Schraube"],
        [1, "D-3", "Bolzen"],
    ]
    again = importer(write_csv(tmp_path / "de2.csv", later))
    assert_completed(again, created=1, updated=1)
    assert again.report["warnings"][0].startswith(
        "columns were mapped by the mapping saved for these headers by 'cli ("
    )
    assert items(data_dir)["D-1"]["price"] == Decimal("0.2")


def test_a_header_row_given_by_number_is_used_below_a_decoy(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["SKU list", "printed 2026"],
        ["SKU", "Price"],
        ["not", "data"],
        ["SKU", "Name"],
        ["E-1", "Eins"],
    ]
    run = importer(write_xlsx(tmp_path / "decoy.xlsx", rows), "--header-row", "4")
    assert_completed(run, created=1)
    assert items(data_dir)["E-1"]["name"] == "Eins"


def test_a_map_option_naming_no_field_is_refused_before_anything_runs(
    tmp_path: Path, run_cli_args: Any, data_dir: Path
) -> None:
    result = run_cli_args(
        "import", str(write_xlsx(tmp_path / "x.xlsx", [HEADER, *DATA])), "--map", "Preis=cost"
    )
    assert result.exit_code == 2
    said = re.sub(r"[│╭╮╰╯─\s]+", " ", result.output)
    assert "the mapping of 'Preis' names 'cost', which is not a field" in said
    assert not (data_dir / "importer.db").exists() or items(data_dir) == {}


@pytest.fixture
def run_cli_args(data_dir: Path) -> Callable[..., Any]:
    """Run any `importer` command in this process against this test's data dir; its
    imports run their steps without a Prefect flow run (`run_here_without_prefect`)."""
    return partial(run_cli_in_process, data_dir)


def run_cli_in_process(
    data_dir: Path, *args: str, env: Mapping[str, str] | None = None, prefect: bool = False
) -> Any:
    """`importer ARGS...` in this process against `data_dir` (see `cli_in_process`)."""
    from typer.testing import CliRunner

    with cli_in_process(data_dir, env or {}, prefect=prefect) as app:
        return CliRunner().invoke(app, list(args))


def test_review_without_a_terminal_previews_then_confirm_writes_exactly_that(
    tmp_path: Path, importer: Importer, data_dir: Path, run_cli_args: Any
) -> None:
    run = importer(write_xlsx(tmp_path / "new.xlsx", [HEADER, *DATA]), "--review")
    assert run.returncode == 0
    preview = run.report["preview"]
    assert run.report["status"] == "awaiting_review"
    assert preview["counts"] == {
        "total_rows": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert not (data_dir / "importer.db").exists() or items(data_dir) == {}

    confirmed = run_cli_args("confirm", run.report["job_id"], "--json")
    report = json.loads(confirmed.stdout.strip().splitlines()[-1])
    assert (report["status"], report["created"]) == ("completed", 3)
    assert items(data_dir) == EXPECTED


def test_an_unusual_sheet_waits_with_its_reason_unless_no_guard_is_given(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    header = ["SKU", "Name", "Price", "Qty"]
    stock = [header] + [[f"GC-{i:02d}", f"Part {i}", 24.5, 2] for i in range(12)]
    assert_completed(importer(write_xlsx(tmp_path / "stock.xlsx", stock)), created=12)
    # Price and stock swapped: every price 24.50 -> 2.00.
    swapped = [header] + [[f"GC-{i:02d}", f"Part {i}", 2, 24] for i in range(12)]

    held = importer(write_xlsx(tmp_path / "swapped.xlsx", swapped))

    assert (held.returncode, held.report["status"]) == (0, "awaiting_review"), held.describe()
    tripped = held.report["guard"]["tripped"]
    assert [t["rule"] for t in tripped] == ["price_change", "price_factor"]
    assert tripped[0]["sentence"].startswith(
        "12 of 12 updated prices (100 %) would change by more than 50 %; e.g. GC-00 24.50 -> 2.00"
    )
    assert f"importer confirm {held.report['job_id']}" in held.stderr
    assert items(data_dir)["GC-00"]["price"] == Decimal("24.5")

    forced = importer(write_xlsx(tmp_path / "swapped-again.xlsx", swapped), "--no-guard")

    assert_completed(forced, updated=12)
    assert forced.report["guard"] == {"checked": False, "tripped": []}
    assert (items(data_dir)["GC-00"]["price"], items(data_dir)["GC-00"]["quantity"]) == (2, 24)
