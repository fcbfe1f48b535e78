"""The contract's cases that need Prefect: real `importer import` processes (a flow run in
each), and imports run both ways in this process, through the CLI's Prefect flow run and
through its steps alone (as the rest of the contract runs them), giving the same report.

Here a data dir starts new and empty, as a new user's does: the first import into it
creates and migrates its database (the other modules start from a migrated copy).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_cli_contract import (
    _DATABASE_URLS,
    BOTH_DATABASES,
    DATA,
    EXPECTED,
    HEADER,
    MIXED,
    Importer,
    Run,
    _many_rows,
    assert_completed,
    assert_failed,
    assert_refused_cleanly,
    check_report_shape,
    items,
    run_cli_in_process,
    run_importer_in_process,
)
from tests.contract.workbooks import (
    write_csv,
    write_png,
    write_truncated_xlsx,
    write_xlsx,
    write_zip_bomb_xlsx,
)

pytestmark = pytest.mark.subprocess


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A new, not yet existing data dir for this test."""
    return tmp_path / "var"


# --- real processes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: write_png(d / "items.xlsx"), id="png-as-xlsx"),
        pytest.param(
            lambda d: write_truncated_xlsx(d / "items.xlsx", [HEADER, *DATA * 50]),
            id="truncated-xlsx",
        ),
    ],
)
def test_refused_file_shows_the_user_no_traceback(
    make: Callable[[Path], Path],
    tmp_path: Path,
    importer: Importer,
    data_dir: Path,
    prefect_env: Any,
) -> None:
    # "never a traceback": not in the job's reason, and not on the terminal either.
    run = importer(make(tmp_path), process=True)
    assert_refused_cleanly(run, data_dir)
    assert "Traceback" not in run.stdout, run.describe()
    assert "Traceback" not in run.stderr, run.describe()


def test_zip_bomb_fails_fast_without_exhausting_memory(
    tmp_path: Path, importer: Importer, data_dir: Path, prefect_env: Any
) -> None:
    # The sheet XML inflates to 3 GB, over the default 2 GiB decompressed-size limit.
    bomb = write_zip_bomb_xlsx(tmp_path / "bomb.xlsx", uncompressed_bytes=3_000_000_000)
    assert bomb.stat().st_size < 10 * 1024 * 1024
    run = importer(bomb, timeout=180, process=True)
    assert_refused_cleanly(run, data_dir)
    assert run.elapsed_s < 120, run.describe()
    assert run.peak_rss_kib is not None, run.describe()
    assert run.peak_rss_kib < 1536 * 1024, f"peak RSS {run.peak_rss_kib} KiB\n{run.describe()}"


# On PostgreSQL: tests/flows/test_faults.py (concurrent imports of shared SKUs).
def test_two_imports_at_once_into_one_database_both_complete(
    tmp_path: Path, importer: Importer, data_dir: Path, prefect_env: Any
) -> None:
    assert_completed(
        importer(write_csv(tmp_path / "seed.csv", [["SKU", "Name"], ["Z", "z"]])), created=1
    )
    first = write_csv(tmp_path / "first.csv", _many_rows(400, prefix="F"))
    second = write_xlsx(tmp_path / "second.xlsx", _many_rows(400, prefix="S"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(
            pool.map(lambda f: importer(f, "--batch-size", "50", process=True), [first, second])
        )
    for run in runs:
        assert_completed(run, created=400)
    assert len(items(data_dir)) == 801


def test_first_imports_into_a_new_data_dir_may_start_at_the_same_time(
    tmp_path: Path, importer: Importer, data_dir: Path, prefect_env: Any
) -> None:
    # Each CLI run prepares the database on first use; runs that start together must not
    # trip over each other doing it. (A race: a broken implementation fails only sometimes.)
    files = [write_csv(tmp_path / f"part{n}.csv", _many_rows(50, prefix=f"P{n}")) for n in range(4)]
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        runs = list(pool.map(partial(importer, process=True), files))
    for run in runs:
        assert_completed(run, created=50)
    assert len(items(data_dir)) == 200


# --- with and without a Prefect flow run ---------------------------------------------------

# What differs between two imports of the same file: the ids and the clock.
VOLATILE = (
    "job_id",
    "flow_run_id",
    "created_at",
    "started_at",
    "finished_at",
    "elapsed_s",
    "rows_per_s",
    "waited_s",
)


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in VOLATILE}


class BothWays:
    """Each step run twice, each time into its own new data dir (and database): in this
    process through the CLI with its Prefect flow run, and with the flow's steps alone (as
    the contract's other cases run); `same` checks the user got the same from both."""

    def __init__(self, tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
        self.dirs = {way: tmp_path / f"var-{way}" for way in ("steps", "prefect")}
        self.env: dict[str, dict[str, str]] = {way: {} for way in self.dirs}
        self.last: dict[str, Run] = {}
        if backend == "postgresql":
            from devtools import postgres

            server = request.getfixturevalue("postgres_server")
            template = request.getfixturevalue("postgres_template")
            for way, path in self.dirs.items():
                name = f"contract_{way}_{uuid.uuid4().hex[:12]}"
                url = postgres.create_database(server, name, template=template)
                self.env[way] = {"IMPORTER_DATABASE_URL": url}
                _DATABASE_URLS[path] = url

    def close(self) -> None:
        for path in self.dirs.values():
            _DATABASE_URLS.pop(path, None)

    def same(self, runs: dict[str, Run]) -> Run:
        """The two runs' exit codes, reports and stored items are the same: the run."""
        self.last = runs
        steps, prefect = runs["steps"], runs["prefect"]
        assert steps.returncode == prefect.returncode, f"{steps.describe()}\n{prefect.describe()}"
        assert _comparable(steps.report) == _comparable(prefect.report)
        assert items(self.dirs["steps"]) == items(self.dirs["prefect"])
        return prefect

    def importer(self, file: Path, *args: str) -> Run:
        """`importer import FILE --json ARGS...` both ways: the run (the same both ways)."""
        return self.same(
            {
                way: run_importer_in_process(
                    file, path, *args, env=self.env[way], prefect=way == "prefect"
                )
                for way, path in self.dirs.items()
            }
        )

    def cli(self, *args: str) -> Run:
        """`importer ARGS...` both ways, JOB standing for the job of that way's last run."""
        runs = {}
        for way, path in self.dirs.items():
            given = [self.last[way].report["job_id"] if a == "JOB" else a for a in args]
            result = run_cli_in_process(path, *given, env=self.env[way], prefect=way == "prefect")
            lines = result.stdout.strip().splitlines()
            assert lines, result.output
            runs[way] = Run(result.exit_code, result.stdout, "", json.loads(lines[-1]), 0, None)
            check_report_shape(runs[way])
        return self.same(runs)


@pytest.fixture
def both_ways(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, prefect_env: Any
) -> Any:
    ways = BothWays(tmp_path, backend, request)
    yield ways
    ways.close()


@BOTH_DATABASES
def test_a_completed_import_reports_the_same_with_and_without_a_flow_run(
    tmp_path: Path, both_ways: BothWays
) -> None:
    assert_completed(
        both_ways.importer(write_xlsx(tmp_path / "v1.xlsx", [HEADER, *DATA])), created=3
    )
    changed = [[*DATA[0][:5], 9.5, *DATA[0][6:]], *DATA[1:]]
    run = both_ways.importer(
        write_csv(tmp_path / "v2.csv", [HEADER, *changed]), "--batch-size", "2"
    )
    assert_completed(run, updated=1, unchanged=2)
    assert items(both_ways.dirs["steps"])["A-001"]["price"] is not None


def test_row_errors_and_an_aborted_import_report_the_same_with_and_without_a_flow_run(
    tmp_path: Path, both_ways: BothWays
) -> None:
    run = both_ways.importer(write_xlsx(tmp_path / "mixed.xlsx", MIXED))
    assert_completed(run, created=2, failed=2)
    assert [e["row"] for e in run.report["errors"]] == [3, 5]
    aborted = both_ways.importer(write_xlsx(tmp_path / "again.xlsx", MIXED), "--on-error", "abort")
    assert assert_failed(aborted)
    assert [e["row"] for e in aborted.report["errors"]] == [3, 5]


def test_a_file_that_cannot_be_read_fails_the_same_with_and_without_a_flow_run(
    tmp_path: Path, both_ways: BothWays
) -> None:
    run = both_ways.importer(write_truncated_xlsx(tmp_path / "cut.xlsx", [HEADER, *DATA * 50]))
    assert_failed(run)
    assert items(both_ways.dirs["steps"]) == {}


def test_a_text_file_reads_the_same_with_and_without_a_flow_run(
    tmp_path: Path, both_ways: BothWays
) -> None:
    rows = [
        ["SKU", "Name", "Price"],
        ["A-1", "Schraube Größe M6", "1.234,50"],
        ["A-2", "Mutter", "0,5"],
    ]
    text = "\r\n".join(";".join(r) for r in rows) + "\r\n"
    path = tmp_path / "items.csv"
    path.write_bytes(text.encode("cp1252"))
    run = both_ways.importer(path)
    assert_completed(run, created=2)
    assert items(both_ways.dirs["steps"])["A-1"]["name"] == "Schraube Größe M6"
    assert any("Windows-1252" in w for w in run.report["warnings"]), run.describe()


def test_a_review_and_its_confirmation_report_the_same_with_and_without_a_flow_run(
    tmp_path: Path, both_ways: BothWays
) -> None:
    run = both_ways.importer(write_xlsx(tmp_path / "new.xlsx", [HEADER, *DATA]), "--review")
    assert (run.returncode, run.report["status"]) == (0, "awaiting_review")
    assert run.report["preview"]["counts"]["created"] == 3
    assert items(both_ways.dirs["steps"]) == {}
    confirmed = both_ways.cli("confirm", "JOB", "--json")
    assert_completed(confirmed, created=3)
    assert items(both_ways.dirs["prefect"]) == EXPECTED
