"""Measure an import end to end and by phase: read, validate, write (SQLite by default).

    uv run python benchmarks/import_speed.py --rows 100000

Generates an item sheet (a mix of new, changed and unchanged rows against a pre-loaded
table), then measures, on a fresh database:
  * `importer import FILE --json` as a user runs it (wall time, job rows/s, peak RSS of
    the CLI process and its parse child);
  * the same work by phase, in-process: read (fastexcel), validate (polars), write
    (batched upserts with progress commits), with peak RSS.
Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generate(path: Path, rows: int, *, offset: int = 0, changed_every: int = 0) -> Path:
    """An .xlsx of `rows` items; with `changed_every`, every n-th row has a new price."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Items")
    sheet.append(["SKU", "Name", "Description", "Category", "Unit", "Price", "Qty", "Barcode"])
    for i in range(offset, offset + rows):
        price = round(1 + (i % 997) * 0.25, 2)
        if changed_every and i % changed_every == 0:
            price += 1
        sheet.append(
            [
                f"SKU-{i:07d}",
                f"Item {i}",
                f"Description of item {i}",
                f"Group {i % 50}",
                "pcs",
                price,
                i % 1000,
                f"{5900000000000 + i}",
            ]
        )
    workbook.save(path)
    return path


def run_cli(file: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run `importer import FILE --json` and measure it from outside."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "import", str(file), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "wall_s": round(wall, 2),
        "job": report,
        "peak_rss_children_mb": round(usage.ru_maxrss / 1024),
    }


def phases(file: Path, batch_size: int) -> dict[str, Any]:
    """Read, validate and write in this process, timing each phase."""
    from db.models import JobSource
    from db.session import session_scope
    from itemsheet.formats import detect_format
    from itemsheet.header import find_header
    from itemsheet.importing import (
        JobOptions,
        apply_batch,
        begin_attempt,
        create_job,
        record_summary,
    )
    from itemsheet.prepare import SheetSummary
    from itemsheet.reader import read_grid
    from itemsheet.storage import store_path
    from itemsheet.validate import validate
    from settings import get_settings

    data = file.read_bytes()
    t0 = time.perf_counter()
    grid = read_grid(data, detect_format(data))
    t1 = time.perf_counter()
    validated = validate(grid, find_header(grid.frame))
    t2 = time.perf_counter()
    settings = get_settings()
    stored = store_path(file, settings.resolved_storage_url(), max_bytes=2**40)
    with session_scope() as session:
        job_id = create_job(
            session,
            stored=stored,
            filename=file.name,
            source=JobSource.CLI,
            options=JobOptions(batch_size=batch_size),
        ).id
        attempt = begin_attempt(session, job_id, flow_run_id=None)
        record_summary(
            session,
            job_id,
            SheetSummary("xlsx", "Items", validated.fields, validated.frame.height, 0, []),
        )
    assert attempt is not None
    t3 = time.perf_counter()
    rows = validated.frame
    batches = 0
    for batch_no, start in enumerate(range(0, rows.height, batch_size), start=1):
        with session_scope() as session:
            apply_batch(
                session,
                job_id,
                attempt=attempt,
                batch_no=batch_no,
                rows=rows.slice(start, batch_size),
            )
        batches += 1
    t4 = time.perf_counter()
    n = rows.height
    return {
        "rows": n,
        "read_s": round(t1 - t0, 3),
        "validate_s": round(t2 - t1, 3),
        "write_s": round(t4 - t3, 3),
        "read_rows_per_s": round(n / (t1 - t0)),
        "validate_rows_per_s": round(n / (t2 - t1)),
        "write_rows_per_s": round(n / (t4 - t3)),
        "data_work_s": round((t1 - t0) + (t2 - t1) + (t4 - t3), 3),
        "data_rows_per_s": round(n / ((t1 - t0) + (t2 - t1) + (t4 - t3))),
        "commits": batches,
        "commits_per_s": round(batches / (t4 - t3), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="importer-bench-"))
    n = args.rows
    print(f"generating {n:,}-row sheets in {work} ...", file=sys.stderr)
    seed = generate(work / "seed.xlsx", n // 2)
    # Half of the rows exist already (a tenth of those with a new price), half are new.
    sheet = generate(work / "items.xlsx", n, offset=0, changed_every=10)

    results: dict[str, Any] = {"rows": n, "batch_size": args.batch_size, "database": "sqlite"}
    for label in ("cli", "phases"):
        data_dir = work / f"var-{label}"
        env = {
            **os.environ,
            "IMPORTER_DATA_DIR": str(data_dir),
            "IMPORTER_BATCH_SIZE": str(args.batch_size),
        }
        if label == "cli":
            run_cli(seed, env)
            results["cli"] = run_cli(sheet, env)
        else:
            os.environ.update(env)
            from db.migrate import upgrade_database
            from db.session import reset_engines
            from settings import get_settings

            get_settings.cache_clear()
            reset_engines()
            upgrade_database()
            phases(seed, args.batch_size)
            results["phases"] = phases(sheet, args.batch_size)

    job = results["cli"]["job"]
    p = results["phases"]
    table = [
        ("rows", f"{n:,}"),
        (
            "importer import: wall time (incl. Prefect start-up)",
            f"{results['cli']['wall_s']:.2f} s",
        ),
        (
            "importer import: job time / rows per s",
            f"{job['elapsed_s']:.2f} s / {job['rows_per_s']:,.0f}",
        ),
        (
            "  created / updated / unchanged / failed",
            f"{job['created']:,} / {job['updated']:,} / {job['unchanged']:,} / {job['failed']:,}",
        ),
        ("read (fastexcel)", f"{p['read_s']:.3f} s  ({p['read_rows_per_s']:,} rows/s)"),
        ("validate (polars)", f"{p['validate_s']:.3f} s  ({p['validate_rows_per_s']:,} rows/s)"),
        (
            "write (batches + progress)",
            f"{p['write_s']:.3f} s  ({p['write_rows_per_s']:,} rows/s, {p['commits_per_s']} commits/s)",
        ),
        (
            "data work (read + validate + write)",
            f"{p['data_work_s']:.3f} s  ({p['data_rows_per_s']:,} rows/s)",
        ),
        ("peak RSS: in-process phases", f"{p['peak_rss_mb']:,} MB"),
        ("peak RSS: largest CLI/child process", f"{results['cli']['peak_rss_children_mb']:,} MB"),
    ]
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"import_speed-{n}-{uuid.uuid4().hex[:6]}.json"
    target.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
