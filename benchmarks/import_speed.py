"""How fast an import is, on SQLite and PostgreSQL, against the naive approaches.

    uv run python benchmarks/import_speed.py                  # 10k, 100k and 1M rows
    uv run python benchmarks/import_speed.py --sizes 10000,100000 --databases sqlite

For every size it generates an item sheet (half of its rows are new; the other half are
already in the table, one in ten of them with a new price), and for every database:
  * `importer import FILE --json` as a user runs it (against one Prefect server started
    for the benchmark): wall time, the job's own time and rows/s, peak RSS; and with
    IMPORTER_GUARD=off, alternated `--guard-rounds` times, for what the guardrails cost;
  * the data work by phase in a fresh process: read (package check + fastexcel),
    validate (polars), the guardrails' pass (every batch counted and measured, nothing
    written), write (the writing pass as the service runs it: batches merged with their
    progress commits, each made ready while the one before it is written), peak RSS;
  * the naive write: per row a SELECT through the ORM, then `add` or set attributes,
    one commit per batch, on an evenly spread sample of the same rows;
and once per size the naive read: pandas with openpyxl. The PostgreSQL cluster is a
throwaway one with PostgreSQL's default durability (fsync on); SQLite runs in WAL mode
with synchronous=NORMAL, as the service does. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sheets import item_rows, write_xlsx  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results"
CHANGED_EVERY = 10


# --- sheets and databases -------------------------------------------------------------


def sheet_for(rows: int) -> Path:
    """The benchmark sheet of `rows` items (cached between runs)."""
    path = CACHE / f"items-{rows}.xlsx"
    if not path.exists():
        started = time.perf_counter()
        tmp = path.with_suffix(".partial")
        write_xlsx(tmp, item_rows(0, rows, changed_every=CHANGED_EVERY))
        tmp.replace(path)
        log(f"generated {path.name} in {time.perf_counter() - started:.1f} s")
    return path


def seed(url: str, rows: int) -> None:
    """Load the items the sheet finds already there: the first half, at their old prices."""
    import polars as pl

    from db.item_store import merge_items
    from db.models import utcnow
    from itemsheet.sheet.validate import PRICE_DTYPE

    env_url(url)
    from db.migrate import upgrade_database
    from db.session import session_scope

    upgrade_database()
    count = rows // 2
    for start in range(0, count, 50_000):
        stop = min(start + 50_000, count)
        frame = pl.DataFrame(
            list(item_rows(start, stop)),
            schema=[
                ("sku", pl.String),
                ("name", pl.String),
                ("description", pl.String),
                ("category", pl.String),
                ("unit", pl.String),
                ("price", pl.Float64),
                ("quantity", pl.Int64),
                ("barcode", pl.String),
            ],
            orient="row",
        ).with_columns(pl.col("price").cast(PRICE_DTYPE))
        with session_scope() as session:
            merge_items(session, frame, now=utcnow())
    if not url.startswith("sqlite"):
        # Settle the new rows now: an autovacuum of them would otherwise run during the
        # measurements, on one of the two cores.
        from db.session import get_engine

        with get_engine().connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM (ANALYZE) item"
            )
            conn.exec_driver_sql("CHECKPOINT")


def env_url(url: str) -> None:
    """Point this process's settings and engines at `url`."""
    from db.session import reset_engines
    from settings import get_settings

    os.environ["IMPORTER_DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_engines()


class Databases:
    """Fresh, seeded databases of one kind, one per measurement."""

    def __init__(self, kind: str, work: Path, server: str | None) -> None:
        self.kind, self.work, self.server = kind, work, server

    def fresh(self, rows: int) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        if self.kind == "sqlite":
            url = f"sqlite:///{self.work / (name + '.db')}"
        else:
            from devtools.postgres import create_database

            assert self.server is not None
            url = create_database(self.server, name)
        run_child(["--seed", url, "--rows", str(rows)])
        return url


# --- measuring processes --------------------------------------------------------------


class TreeMemory(threading.Thread):
    """Samples the resident memory of a process and its descendants; keeps the peaks."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_process, self.peak_tree = pid, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            sizes = [rss(p) for p in tree(self.pid)]
            if sizes:
                self.peak_process = max(self.peak_process, *sizes)
                self.peak_tree = max(self.peak_tree, sum(sizes))
            self.done.wait(0.05)


def tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def run_child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run this script (or, with a leading `-m`, a module) in a new process; its JSON answer."""
    command = [sys.executable, *(args if args[0] == "-m" else [__file__, *args])]
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env or os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    memory = TreeMemory(proc.pid)
    memory.start()
    out, err = proc.communicate()
    memory.done.set()
    memory.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed:\n{err[-3000:]}")
    lines = out.strip().splitlines()
    answer: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    answer["wall_s"] = round(wall, 3)
    answer["peak_rss_mb"] = round(memory.peak_process / 2**20)
    answer["peak_rss_tree_mb"] = round(memory.peak_tree / 2**20)
    return answer


# --- the measurements (each runs in a child process) ----------------------------------


def _batch(batch_size: int | None, url: str) -> int:
    """The batch size asked for, else the service's default for that database."""
    from settings import Settings

    return batch_size or Settings(database_url=url).rows_per_batch()


def parse_only(data: bytes) -> float:
    """Seconds the parser alone takes for the sheet: fastexcel's load straight to an Arrow
    batch, with the arguments the service's read gives it, and nothing else of the import."""
    import fastexcel

    from itemsheet.sheet.reader import release_free_memory

    started = time.perf_counter()
    batch = fastexcel.read_excel(data).load_sheet(
        0, header_row=None, skip_rows=0, dtypes="string", eager=True
    )
    elapsed = time.perf_counter() - started
    assert batch.num_rows > 0
    del batch
    release_free_memory()
    return elapsed


def phases(file: Path, url: str, batch_size: int | None) -> dict[str, Any]:
    """Read, validate and write `file` into `url`, timing each phase."""
    batch_size = _batch(batch_size, url)
    from db.models import JobSource
    from db.repository import get_job
    from db.session import session_scope
    from itemsheet.files.storage import StoredFile
    from itemsheet.jobs.importing import JobOptions, begin_attempt, create_job, record_summary
    from itemsheet.jobs.review import end_preview
    from itemsheet.runs.running import read_stored_ahead, rows_path, write
    from itemsheet.sheet.checked import read_checked
    from itemsheet.sheet.formats import PackageLimits, detect_format
    from itemsheet.sheet.header import find_header
    from itemsheet.sheet.prepare import SheetSummary, write_rows
    from itemsheet.sheet.validate import validate
    from settings import get_settings

    env_url(url)
    settings = get_settings()
    limits = PackageLimits(
        settings.max_uncompressed_bytes,
        settings.max_compression_ratio,
        settings.max_zip_entries,
        settings.max_cells,
    )
    data = file.read_bytes()
    parse_s = parse_only(data)
    with session_scope() as session:
        job_id = create_job(
            session,
            stored=StoredFile(uri=str(file), sha256=uuid.uuid4().hex, size=len(data)),
            filename=file.name,
            source=JobSource.CLI,
            options=JobOptions(batch_size=batch_size),
        ).id
        attempt = begin_attempt(session, job_id, flow_run_id=None)
    assert attempt is not None
    t0 = time.perf_counter()
    # As the run does while its parse child parses: the stored items for the guardrails'
    # pass are read beside the parse.
    read_stored_ahead(job_id, attempt, file)
    fmt = detect_format(data, filename=file.name)
    grid = read_checked(data, fmt, limits=limits)
    t1 = time.perf_counter()
    validated = validate(grid, find_header(grid.frame))
    t2 = time.perf_counter()
    rows = validated.frame
    with session_scope() as session:
        record_summary(
            session, job_id, SheetSummary("xlsx", "Items", validated.fields, rows.height, 0, [])
        )
    # The guardrails' pass, as the service runs it (`running.write` of a job in that pass:
    # several batches to a step, measured ahead on PostgreSQL), from the rows file the
    # parse child would have written.
    write_rows(validated, rows_path(get_settings(), job_id, attempt), batch_rows=batch_size)
    c0 = time.perf_counter()
    batches = -(-rows.height // batch_size)
    assert write(job_id, attempt, batches, lambda percent, total: None)
    with session_scope() as session:
        assert end_preview(session, job_id) == "", "a guardrail tripped on the benchmark sheet"
    check_s = time.perf_counter() - c0
    t3 = time.perf_counter()
    # The writing pass as the service runs it too: each batch made ready while the one
    # before it is written, SQLite's gap between batches included.
    assert write(job_id, attempt, batches, lambda percent, total: None)
    t4 = time.perf_counter()
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        created, updated, unchanged = job.created, job.updated, job.unchanged
    return {
        "rows": rows.height,
        "parse_s": parse_s,
        "read_s": t1 - t0,
        "validate_s": t2 - t1,
        "write_s": t4 - t3,
        "check_s": check_s,
        "commits": batches,
        "counts": [created, updated, unchanged],
        "peak_rss_self_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def naive(file: Path, url: str, sample: int, batch_size: int | None) -> dict[str, Any]:
    """The usual hand-written import: per row a SELECT through the ORM, add or set, commit per batch."""
    batch_size = _batch(batch_size, url)
    from decimal import Decimal

    from sqlalchemy import select

    from db.models import Item, utcnow
    from db.session import session_scope
    from itemsheet.sheet.formats import PackageLimits
    from itemsheet.sheet.prepare import prepare

    env_url(url)
    validated, _ = prepare(
        file.read_bytes(),
        filename=file.name,
        sheet=None,
        limits=PackageLimits(2**40, 10**6, 10**6, 10**9),
    )
    frame = validated.frame
    step = max(1, frame.height // sample) if sample else 1
    rows = (
        frame.gather_every(step)
        .head(sample or frame.height)
        .drop("row", *[c for c in frame.columns if c.startswith("error_")])
    )
    records = rows.to_dicts()
    started = time.perf_counter()
    for start in range(0, len(records), batch_size):
        with session_scope() as session:
            for record in records[start : start + batch_size]:
                item = session.scalars(select(Item).where(Item.sku == record["sku"])).first()
                price = record["price"]
                values = {**record, "price": Decimal(price) if price is not None else None}
                if item is None:
                    session.add(Item(**values))
                else:
                    for key, value in values.items():
                        if getattr(item, key) != value:
                            setattr(item, key, value)
                    item.updated_at = utcnow()
    elapsed = time.perf_counter() - started
    return {"rows": len(records), "write_s": elapsed}


def pandas_read(file: Path) -> dict[str, Any]:
    """Read the sheet as text cells with pandas and openpyxl."""
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_excel(file, engine="openpyxl", dtype=str)
    return {"rows": len(frame), "read_s": time.perf_counter() - started}


def cli(
    file: Path, url: str, api_url: str, batch_size: int | None, work: Path, *, guard: bool = True
) -> dict[str, Any]:
    """`importer import FILE --json` against the benchmark's Prefect server (`guard`:
    with the guardrails, as by default, or with IMPORTER_GUARD=off)."""
    env = {
        **os.environ,
        "IMPORTER_DATABASE_URL": url,
        "IMPORTER_DATA_DIR": str(work / f"var-{uuid.uuid4().hex[:6]}"),
        "IMPORTER_BATCH_SIZE": str(_batch(batch_size, url)),
        "PREFECT_API_URL": api_url,
        "IMPORTER_GUARD": "on" if guard else "off",
    }
    answer = run_child(["-m", "cli.main", "import", str(file), "--json"], env=env)
    return answer


def median_job(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The job of median time among `jobs` (the upper one of an even count)."""
    return sorted(jobs, key=lambda j: float(j["elapsed_s"]))[len(jobs) // 2]


@contextmanager
def prefect_server(work: Path) -> Iterator[str]:
    """A Prefect server for the `importer import` runs (so none of them starts its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect")}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        raise RuntimeError("the Prefect server did not start")
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


# --- the run --------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from devtools import postgres

    work = Path(tempfile.mkdtemp(prefix="importer-bench-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.databases.split(",")
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "batch_size": args.batch_size or "the service's default per database",
        "naive_sample_rows": args.naive_rows,
        "runs": [],
        "pandas_openpyxl": {},
    }
    needs_pg = "postgresql" in kinds and not args.postgres_url
    pg = postgres.cluster(durable=True) if needs_pg else nullcontext(args.postgres_url)
    try:
        with pg as server, prefect_server(work) as api_url:
            for rows in sizes:
                file = sheet_for(rows)
                if rows <= args.pandas_max_rows:
                    log(f"{rows:,} rows: pandas + openpyxl read ...")
                    results["pandas_openpyxl"][str(rows)] = run_child(["--pandas", str(file)])
                for kind in kinds:
                    databases = Databases(kind, work, server)
                    run: dict[str, Any] = {"rows": rows, "database": kind}
                    log(f"{rows:,} rows, {kind}: importer import ...")
                    batch_args = ["--batch-size", str(args.batch_size)] if args.batch_size else []
                    # With the guardrails and without, alternated (which goes first swaps
                    # every round); the median job of each.
                    jobs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
                    for round_ in range(args.guard_rounds):
                        for guard in (True, False) if round_ % 2 == 0 else (False, True):
                            log(f"{rows:,} rows, {kind}: importer import, guard {guard} ...")
                            jobs[guard].append(
                                cli(
                                    file,
                                    databases.fresh(rows),
                                    api_url,
                                    args.batch_size,
                                    work,
                                    guard=guard,
                                )
                            )
                    run["cli"], run["cli_unguarded"] = (
                        median_job(jobs[True]),
                        median_job(jobs[False]),
                    )
                    run["cli_rounds"] = {
                        "guarded_s": [j["elapsed_s"] for j in jobs[True]],
                        "unguarded_s": [j["elapsed_s"] for j in jobs[False]],
                    }
                    log(f"{rows:,} rows, {kind}: phases ...")
                    run["phases"] = run_child(
                        [
                            "--phases",
                            str(file),
                            databases.fresh(rows),
                            *batch_args,
                        ]
                    )
                    if rows == max(sizes) and not args.skip_overhead:
                        log(f"{rows:,} rows, {kind}: phases in one batch (progress overhead) ...")
                        run["one_batch"] = run_child(
                            [
                                "--phases",
                                str(file),
                                databases.fresh(rows),
                                "--batch-size",
                                str(rows),
                            ]
                        )
                    log(
                        f"{rows:,} rows, {kind}: naive ORM on {min(rows, args.naive_rows):,} rows ..."
                    )
                    run["naive"] = run_child(
                        [
                            "--naive",
                            str(file),
                            databases.fresh(rows),
                            "--sample",
                            str(args.naive_rows),
                            *batch_args,
                        ]
                    )
                    results["runs"].append(run)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One line of figures per size and database."""
    lines = []
    pandas_rates = {int(k): v["rows"] / v["read_s"] for k, v in results["pandas_openpyxl"].items()}
    for run in results["runs"]:
        n, p, job = run["rows"], run["phases"], run["cli"]
        check_s = p.get("check_s", 0.0)
        data_s = p["read_s"] + p["validate_s"] + check_s + p["write_s"]
        naive_rate = run["naive"]["rows"] / run["naive"]["write_s"]
        pandas_rate = pandas_rates.get(n) or (
            max(pandas_rates.items())[1] if pandas_rates else None
        )
        parse_rate = n / p["parse_s"] if p.get("parse_s") else None
        line = {
            "rows": n,
            "database": run["database"],
            "parse_rows_per_s": parse_rate,
            "data_share_of_parse": (n / data_s) / parse_rate if parse_rate else None,
            "job_share_of_parse": (n / job["elapsed_s"]) / parse_rate if parse_rate else None,
            "read_rows_per_s": n / p["read_s"],
            "validate_rows_per_s": n / p["validate_s"],
            "write_rows_per_s": n / p["write_s"],
            "read_s": p["read_s"],
            "validate_s": p["validate_s"],
            "write_s": p["write_s"],
            "check_s": check_s,
            "data_s": data_s,
            "data_rows_per_s": n / data_s,
            "commits_per_s": p["commits"] / p["write_s"],
            "peak_rss_mb": p["peak_rss_mb"],
            "cli_wall_s": job["wall_s"],
            "job_s": job["elapsed_s"],
            # Rows over the job's whole time (its own `rows_per_s` is the write's rate).
            "job_rows_per_s": n / job["elapsed_s"],
            "job_unguarded_s": run["cli_unguarded"]["elapsed_s"],
            "guard_cost": job["elapsed_s"] / run["cli_unguarded"]["elapsed_s"] - 1,
            "cli_peak_rss_mb": job["peak_rss_mb"],
            "counts": [job["created"], job["updated"], job["unchanged"], job["failed"]],
            "naive_write_rows_per_s": naive_rate,
            "write_vs_naive": (n / p["write_s"]) / naive_rate,
            "data_vs_naive": (n / data_s) / naive_rate,
            "read_vs_pandas": (n / p["read_s"]) / pandas_rate if pandas_rate else None,
            "pandas_measured_on": n
            if n in pandas_rates
            else (max(pandas_rates) if pandas_rates else None),
        }
        if "one_batch" in run:
            line["progress_overhead"] = p["write_s"] / run["one_batch"]["write_s"] - 1
        lines.append(line)
    return lines


def share(fraction: float | None) -> str:
    """`fraction` of the parser's own rate, as the table shows it."""
    return f" ({fraction * 100:.0f} % of the parser's)" if fraction else ""


def table(lines: list[dict[str, Any]]) -> str:
    head = (
        "| rows | db | parser alone | read | validate | guardrails | write | data work | rows/s (data) "
        "| `importer import` job | "
        "peak RSS | commits/s | vs naive ORM (write / data) | read vs pandas+openpyxl |"
    )
    out = [head, "|---" * (head.count("|") - 1) + "|"]
    for x in lines:
        parse = f"{x['parse_rows_per_s']:,.0f} rows/s" if x.get("parse_rows_per_s") else "-"
        pandas = f"{x['read_vs_pandas']:.0f}x" if x["read_vs_pandas"] else "-"
        if x["read_vs_pandas"] and x["pandas_measured_on"] != x["rows"]:
            pandas += f" (pandas on {x['pandas_measured_on']:,})"
        overhead = (
            f", {x['progress_overhead'] * 100:+.1f} % vs 1 batch"
            if "progress_overhead" in x
            else ""
        )
        out.append(
            f"| {x['rows']:,} | {x['database']} | {parse} | {x['read_s']:.2f} s | "
            f"{x['validate_s']:.2f} s | {x['check_s']:.2f} s | {x['write_s']:.2f} s | "
            f"{x['data_s']:.2f} s | {x['data_rows_per_s']:,.0f}{share(x['data_share_of_parse'])} | "
            f"{x['job_s']:.2f} s, {x['job_rows_per_s']:,.0f} rows/s"
            f"{share(x['job_share_of_parse'])}; without guardrails "
            f"{x['job_unguarded_s']:.2f} s ({x['guard_cost'] * 100:+.1f} % with them) | "
            f"{x['peak_rss_mb']:,} MB (CLI {x['cli_peak_rss_mb']:,} MB) | {x['commits_per_s']:.1f}{overhead} | "
            f"{x['write_vs_naive']:.0f}x / {x['data_vs_naive']:.0f}x (naive {x['naive_write_rows_per_s']:,.0f} rows/s) | {pandas} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--guard-rounds",
        type=int,
        default=1,
        help="importer import with and without the guardrails, alternated, this many times",
    )
    parser.add_argument(
        "--naive-rows",
        type=int,
        default=20_000,
        help="rows the naive ORM import writes (an even sample); 0: all",
    )
    parser.add_argument(
        "--pandas-max-rows", type=int, default=100_000, help="largest sheet pandas+openpyxl reads"
    )
    parser.add_argument(
        "--postgres-url", help="a PostgreSQL server to use instead of a throwaway cluster"
    )
    parser.add_argument(
        "--skip-overhead",
        action="store_true",
        help="skip the one-batch run that measures progress overhead",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "import_speed.json")
    # Internal: the measurements each run in a process of their own.
    parser.add_argument("--phases", nargs=2, metavar=("FILE", "URL"))
    parser.add_argument("--naive", nargs=2, metavar=("FILE", "URL"))
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--pandas", metavar="FILE")
    parser.add_argument("--seed", metavar="URL")
    parser.add_argument("--rows", type=int)
    args = parser.parse_args()
    if args.phases:
        print(json.dumps(phases(Path(args.phases[0]), args.phases[1], args.batch_size)))
        return
    if args.naive:
        print(json.dumps(naive(Path(args.naive[0]), args.naive[1], args.sample, args.batch_size)))
        return
    if args.pandas:
        print(json.dumps(pandas_read(Path(args.pandas))))
        return
    if args.seed:
        seed(args.seed, args.rows)
        print("{}")
        return
    results = measure(args)
    lines = summarise(results)
    results["summary"] = lines
    print(table(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    log(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
