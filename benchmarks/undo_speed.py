"""What undo costs an import, and how fast an undo runs, on SQLite and PostgreSQL.

    uv run python benchmarks/undo_speed.py                       # 1M rows, both databases
    uv run python benchmarks/undo_speed.py --rows 100000 --databases sqlite --repeat 1

The sheet is `import_speed.py`'s (half of its rows new, the other half already stored, one
in ten of those with a new price), read and validated once. Then, alternating, each on a
fresh seeded database: the write phase (every batch merged with its progress commit)
without the before-image, as before undo existed, and with it, as the service now writes.
For the runs with it: the bytes the before-images take (SQLite: the database's growth
against the run without; PostgreSQL: `pg_total_relation_size` of `item_undo`), and an
undo of the whole import batch by batch (rows/s), checked to leave the items as seeded.
Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from import_speed import RESULTS, Databases, env_url, log, sheet_for  # noqa: E402


def _read(file: Path) -> Any:
    """The sheet's validated rows, as an import's write step gets them."""
    from itemsheet.sheet.formats import PackageLimits, check_package, detect_format
    from itemsheet.sheet.header import find_header
    from itemsheet.sheet.reader import read_grid
    from itemsheet.sheet.validate import validate
    from settings import get_settings

    settings = get_settings()
    data = file.read_bytes()
    fmt = detect_format(data, filename=file.name)
    check_package(
        data,
        PackageLimits(
            settings.max_uncompressed_bytes,
            settings.max_compression_ratio,
            settings.max_zip_entries,
            settings.max_cells,
        ),
    )
    grid = read_grid(data, fmt, error_cells=False)
    return validate(grid, find_header(grid.frame))


def write(validated: Any, url: str, batch_size: int, *, before_image: bool) -> dict[str, Any]:
    """Write every batch into `url` as `apply_batch` does; with or without the before-image."""
    import uuid

    import itemsheet.jobs.importing as importing
    from db.models import JobSource
    from db.session import session_scope
    from itemsheet.files.storage import StoredFile
    from itemsheet.sheet.prepare import SheetSummary

    env_url(url)
    keep = importing.keep_before
    if not before_image:  # the write as it was before undo: no before-image step at all
        importing.keep_before = lambda *args, **kwargs: None  # type: ignore[assignment]
    rows = validated.frame
    try:
        with session_scope() as session:
            job_id = importing.create_job(
                session,
                stored=StoredFile(uri="bench", sha256=uuid.uuid4().hex, size=1),
                filename="items.xlsx",
                source=JobSource.CLI,
                # The guardrails' pass writes nothing and is not what this measures.
                options=importing.JobOptions(batch_size=batch_size, guard=False),
            ).id
            attempt = importing.begin_attempt(session, job_id, flow_run_id=None)
            summary = SheetSummary("xlsx", "Items", validated.fields, rows.height, 0, [])
            importing.record_summary(session, job_id, summary)
        assert attempt is not None
        counts = [0, 0, 0]
        started, cpu = time.perf_counter(), time.process_time()
        for batch_no, start in enumerate(range(0, rows.height, batch_size), start=1):
            with session_scope() as session:
                done = importing.apply_batch(
                    session,
                    job_id,
                    attempt=attempt,
                    batch_no=batch_no,
                    rows=rows.slice(start, batch_size),
                )
            assert done is not None
            counts = [
                counts[0] + done.created,
                counts[1] + done.updated,
                counts[2] + done.unchanged,
            ]
        write_s = time.perf_counter() - started
        assert counts[0] and counts[1], f"the write created or updated nothing: {counts}"
        # SQLite writes in this process: its CPU time is the figure other load hardly moves.
        cpu_s = time.process_time() - cpu
        with session_scope() as session:
            importing.finish_job(session, job_id, importing.JobStatus.COMPLETED)
    finally:
        importing.keep_before = keep
    return {"job_id": str(job_id), "write_s": write_s, "write_cpu_s": cpu_s, "counts": counts}


def storage(url: str) -> dict[str, int]:
    """The database's size, the before-images' size and their JSON payload, in bytes."""
    from sqlalchemy import text

    from db.session import session_scope

    env_url(url)
    with session_scope() as session:
        payload = session.execute(
            text("SELECT COALESCE(SUM(LENGTH(created) + LENGTH(changed)), 0) FROM item_undo")
        ).scalar_one()
        created = session.execute(
            text("SELECT COALESCE(SUM(LENGTH(created)), 0) FROM item_undo")
        ).scalar_one()
        if url.startswith("sqlite"):
            pages = session.execute(text("PRAGMA page_count")).scalar_one()
            size = session.execute(text("PRAGMA page_size")).scalar_one()
            return {
                "db_bytes": int(pages) * int(size),
                "payload": int(payload),
                "created_payload": int(created),
            }
        table = session.execute(text("SELECT pg_total_relation_size('item_undo')")).scalar_one()
        return {
            "undo_table_bytes": int(table),
            "payload": int(payload),
            "created_payload": int(created),
        }


def undo(url: str, job_id: str) -> dict[str, Any]:
    """Undo the whole import batch by batch, as the undo-import flow does; time and check."""
    import uuid

    from sqlalchemy import func, select

    from db.models import Item
    from db.session import session_scope
    from itemsheet.jobs.importing import begin_attempt
    from itemsheet.jobs.undoing import apply_undo_batch, create_undo_job, finish_undo, plan_undo

    env_url(url)
    started = time.perf_counter()
    with session_scope() as session:
        undo_id = create_undo_job(session, uuid.UUID(job_id), force=False, undo_days=30).id
        attempt = begin_attempt(session, undo_id, flow_run_id=None)
        batches = plan_undo(session, undo_id)
    assert attempt is not None and isinstance(batches, int)
    for batch_no in range(1, batches + 1):
        with session_scope() as session:
            apply_undo_batch(session, undo_id, attempt=attempt, batch_no=batch_no)
    with session_scope() as session:
        job = finish_undo(session, undo_id)
        result = [job.processed_rows, job.deleted, job.updated, job.failed]
    undo_s = time.perf_counter() - started
    with session_scope() as session:
        items = session.scalar(select(func.count()).select_from(Item))
    return {"undo_s": undo_s, "undo": result, "items_after_undo": items, "batches": batches}


def child(file: Path, urls: list[str], batch_size: int) -> dict[str, Any]:
    """In one process: read once, then write each fresh database alternately off and on."""
    t0 = time.perf_counter()
    validated = _read(file)
    runs = []
    for k, url in enumerate(urls):
        on = k % 2 == 1
        run = {"before_image": on, **write(validated, url, batch_size, before_image=on)}
        run.update(storage(url))
        if on:
            run.update(undo(url, run["job_id"]))
        runs.append(run)
    return {"rows": validated.frame.height, "read_s": time.perf_counter() - t0, "runs": runs}


def summarise(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    runs = result["runs"]
    off = [r for r in runs if not r["before_image"]]
    on = [r for r in runs if r["before_image"]]
    created, updated, _ = on[0]["counts"]
    written = created + updated
    if kind == "sqlite":
        extra = statistics.median(
            b["db_bytes"] - a["db_bytes"] for a, b in zip(off, on, strict=True)
        )
    else:
        extra = statistics.median(r["undo_table_bytes"] for r in on)
    payload = on[0]["payload"]
    created_payload = on[0]["created_payload"]
    return {
        "database": kind,
        "rows": result["rows"],
        "created": created,
        "updated": updated,
        "write_s_without": [round(r["write_s"], 2) for r in off],
        "write_s_with": [round(r["write_s"], 2) for r in on],
        "write_cpu_s_without": [round(r["write_cpu_s"], 2) for r in off],
        "write_cpu_s_with": [round(r["write_cpu_s"], 2) for r in on],
        "extra_cpu_pct": round(
            100
            * (
                statistics.median(r["write_cpu_s"] for r in on)
                / statistics.median(r["write_cpu_s"] for r in off)
                - 1
            ),
            1,
        ),
        "extra_write_pct": round(
            100
            * (
                statistics.median(r["write_s"] for r in on)
                / statistics.median(r["write_s"] for r in off)
                - 1
            ),
            1,
        ),
        "stored_bytes": int(extra),
        "bytes_per_written_row": round(extra / max(written, 1), 1),
        "payload_per_created_row": round(created_payload / max(created, 1), 1),
        "payload_per_updated_row": round((payload - created_payload) / max(updated, 1), 1),
        "undo_s": [round(r["undo_s"], 2) for r in on],
        "undo_rows_per_s": [round(r["undo"][0] / r["undo_s"]) for r in on],
        "undo_result": on[0]["undo"],
        "items_after_undo": on[0]["items_after_undo"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs without and with, each")
    parser.add_argument("--out", type=Path, default=RESULTS / "undo_speed.json")
    parser.add_argument("--child", nargs="+", metavar="FILE_THEN_URLS")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1:], args.batch_size)))
        return
    import tempfile

    from import_speed import run_child

    from devtools import postgres

    file = sheet_for(args.rows)
    kinds = args.databases.split(",")
    summary = []
    with tempfile.TemporaryDirectory(prefix="undo-bench-") as tmp:
        pg = postgres.cluster(durable=True) if "postgresql" in kinds else nullcontext(None)
        with pg as server:
            for kind in kinds:
                dbs = Databases(kind, Path(tmp), server)
                urls = [dbs.fresh(args.rows) for _ in range(2 * args.repeat)]
                log(f"{kind}: {len(urls)} seeded databases; writing and undoing {args.rows:,} rows")
                result = run_child(
                    [
                        "-m",
                        "benchmarks.undo_speed",
                        "--child",
                        str(file),
                        *urls,
                        "--batch-size",
                        str(args.batch_size),
                    ]
                )
                summary.append(summarise(kind, result))
                log(json.dumps(summary[-1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print()
    print(
        "| db | rows (created / updated) | write without | write with | extra | before-image bytes per written row (created / updated payload) | undo | undo rows/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in summary:
        print(
            f"| {s['database']} | {s['rows']:,} ({s['created']:,} / {s['updated']:,}) |"
            f" {' / '.join(f'{v:.2f} s' for v in s['write_s_without'])} |"
            f" {' / '.join(f'{v:.2f} s' for v in s['write_s_with'])} | {s['extra_write_pct']:+.1f} % / {s['extra_cpu_pct']:+.1f} % |"
            f" {s['bytes_per_written_row']:.1f} ({s['payload_per_created_row']:.1f} / {s['payload_per_updated_row']:.1f}) |"
            f" {' / '.join(f'{v:.2f} s' for v in s['undo_s'])} |"
            f" {' / '.join(f'{v:,}' for v in s['undo_rows_per_s'])} |"
        )


if __name__ == "__main__":
    main()
