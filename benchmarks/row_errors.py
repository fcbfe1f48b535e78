"""What failing rows cost: the run process's memory and the database's growth.

    uv run python benchmarks/row_errors.py                    # 300,000 failing rows, 1M valid
    uv run python benchmarks/row_errors.py --cases skip,abort --failing-rows 100000
    BENCH_ROOT=<other checkout> uv run python benchmarks/row_errors.py   # the "before"

Each case runs `importer import FILE --json` as a user runs it, in a process of its own
with a fresh data dir (SQLite) against one Prefect server started for the benchmark, and
reports the peak resident size of that process alone (`ru_maxrss` of the process that
runs the flow; its parse child is reported apart), the job's counts and warnings, the rows
in `import_row_error` and how much the SQLite file grew (after a WAL checkpoint, against
the freshly migrated database). Cases:
  * `skip`, `abort`: a CSV of `--failing-rows` rows, an SKU and the price `abc` each, so
    every row fails;
  * `valid`: a CSV of `--valid-rows` new items (SKU, name, price).
`BENCH_ROOT` names another checkout whose own virtual environment runs the import, which
is how "before" figures are taken on the same machine in the same session.
Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("BENCH_ROOT") or HERE.parent).resolve()
PYTHON = ROOT / ".venv" / "bin" / "python"
sys.path.insert(0, str(HERE))

from import_speed import prefect_server  # noqa: E402

RESULTS = HERE / "results"

# Runs the checkout's `importer` in this interpreter and reports, on stderr, the peak
# resident size of this process (which runs the flow) and of its largest child (the parse).
_RUNNER = """
import resource, sys
try:
    from cli.main import app
    app()
finally:
    sys.stderr.write("\\n[bench] self_kib=%d children_kib=%d\\n" % (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
"""


def failing_csv(path: Path, rows: int) -> Path:
    """`rows` rows whose price is not a number: each one is a row error."""
    with path.open("w") as out:
        out.write("SKU,Price\n")
        out.writelines(f"SKU-{i:07d},abc\n" for i in range(rows))
    return path


def valid_csv(path: Path, rows: int) -> Path:
    """`rows` new items with a name and a price."""
    with path.open("w") as out:
        out.write("SKU,Name,Price\n")
        out.writelines(f"SKU-{i:07d},Item {i},{i % 1000}.25\n" for i in range(rows))
    return path


def migrated_size(data_dir: Path) -> int:
    """The size of a freshly migrated database of the measured checkout."""
    url = f"sqlite:///{data_dir / 'importer.db'}"
    subprocess.run(
        [str(PYTHON), "-c", f"from db.migrate import upgrade_database; upgrade_database({url!r})"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return checkpointed_size(data_dir / "importer.db")


def checkpointed_size(db: Path) -> int:
    """The SQLite file's size with its write-ahead log folded in."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


def run_case(name: str, file: Path, args: list[str], api_url: str, work: Path) -> dict[str, Any]:
    """One `importer import` run on a fresh data dir; its figures."""
    data_dir = work / f"var-{name}"
    data_dir.mkdir()
    base = migrated_size(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTER_")}
    env.update({"IMPORTER_DATA_DIR": str(data_dir), "PREFECT_API_URL": api_url})
    env.pop("VIRTUAL_ENV", None)
    started = time.perf_counter()
    proc = subprocess.run(
        [str(PYTHON), "-c", _RUNNER, "import", str(file), "--json", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    peaks = [line for line in proc.stderr.splitlines() if line.startswith("[bench]")]
    if not peaks:
        raise RuntimeError(f"{name}: no peak reported\n{proc.stderr[-3000:]}")
    fields = dict(part.split("=") for part in peaks[-1].split()[1:])
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    db = data_dir / "importer.db"
    size = checkpointed_size(db)
    with sqlite3.connect(db) as conn:
        errors = conn.execute("SELECT count(*) FROM import_row_error").fetchone()[0]
    return {
        "case": name,
        "file": file.name,
        "file_mib": round(file.stat().st_size / 2**20, 1),
        "status": report["status"],
        "total_rows": report["total_rows"],
        "failed": report["failed"],
        "created": report["created"],
        "warnings": report["warnings"],
        "row_errors_stored": errors,
        "db_growth_mib": round((size - base) / 2**20, 2),
        "peak_rss_run_mib": round(int(fields["self_kib"]) / 1024),
        "peak_rss_parse_mib": round(int(fields["children_kib"]) / 1024),
        "job_s": report["elapsed_s"],
        "wall_s": round(wall, 1),
    }


def table(results: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table."""
    out = [
        "| case | rows | status | failed | row errors stored | db growth | peak RSS, run"
        " process | parse child | job |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        out.append(
            f"| {r['case']} | {r['total_rows']:,} | {r['status']} | {r['failed']:,} |"
            f" {r['row_errors_stored']:,} | {r['db_growth_mib']:,.2f} MiB |"
            f" {r['peak_rss_run_mib']:,} MiB | {r['peak_rss_parse_mib']:,} MiB | {r['job_s']} s |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="skip,abort,valid")
    parser.add_argument("--failing-rows", type=int, default=300_000)
    parser.add_argument("--valid-rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="importer-row-errors-"))
    cases = args.cases.split(",")
    files = {}
    if {"skip", "abort"} & set(cases):
        files["failing"] = failing_csv(work / f"failing-{args.failing_rows}.csv", args.failing_rows)
    if "valid" in cases:
        files["valid"] = valid_csv(work / f"valid-{args.valid_rows}.csv", args.valid_rows)
    plan = {
        "skip": (files.get("failing"), []),
        "abort": (files.get("failing"), ["--on-error", "abort"]),
        "valid": (files.get("valid"), []),
    }
    results = []
    with prefect_server(work) as api_url:
        for case in cases:
            file, extra = plan[case]
            assert file is not None
            print(f"{case}: {file.name} ({ROOT.name})", file=sys.stderr, flush=True)
            results.append(run_case(case, file, extra, api_url, work))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(f"checkout: {ROOT.name}")
    print(table(results))
    out = args.out or RESULTS / f"row_errors-{ROOT.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"root": str(ROOT), "results": results}, indent=2))


if __name__ == "__main__":
    main()
