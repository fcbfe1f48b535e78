"""Real `importer worker` processes against the session's Prefect server, and their runs."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from db.models import ImportJob, Item, JobSource
from db.repository import get_job
from db.session import session_scope
from devtools.stack import gate_env
from itemsheet.jobs.importing import JobOptions
from itemsheet.jobs.uploads import job_for_path
from orchestration.dispatch import dispatch_once
from orchestration.trigger import PrefectTrigger
from settings import get_settings
from tests.contract.workbooks import write_xlsx

ROOT = Path(__file__).resolve().parents[2]
FINAL = {"completed", "failed", "cancelled"}
# Fast beats and rounds so a dead run is noticed in seconds, and small batches so an
# import lasts long enough to be interrupted half-way. Stale after 10 s, not less: with
# three test processes and their stacks on two cores, a live run's beat was once 6 s late
# and its import resumed beside it (which the product then handles, but not the test).
FAST_RECOVERY = {
    "IMPORTER_BATCH_SIZE": "100",
    "IMPORTER_HEARTBEAT_S": "0.5",
    "IMPORTER_STALE_AFTER_S": "10",
    "IMPORTER_RECONCILE_INTERVAL_S": "1",
}


@dataclass
class Workers:
    """`importer worker` processes sharing one database and one Prefect server."""

    env: dict[str, str]
    log_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        """Start one more worker (in its own process group, as a service manager would)."""
        log = (self.log_dir / f"worker-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"],
            cwd=ROOT,
            env=self.env | env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def wait_started(self, timeout: float = 120) -> None:
        """Wait until every worker says it started (it does once a run would start warm)."""
        deadline = time.monotonic() + timeout
        logs = sorted(self.log_dir.glob("worker-*.log"))
        while sum(b"started!" in p.read_bytes() for p in logs) < len(self.procs):
            assert time.monotonic() < deadline, f"the workers did not start\n{self.logs()}"
            time.sleep(0.1)

    def logs(self) -> str:
        """The tail of every worker's log, for assertion messages."""
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.log_dir.glob("worker-*.log")))


@contextmanager
def running_workers(
    data_dir: Path, prefect_api: str, count: int = 2, *, spares: int = 0, **env: str
) -> Iterator[Workers]:
    """`count` workers with fast recovery settings; every process is killed at the end.

    Their runs start as fresh `python -m prefect.engine` processes unless `spares` asks for
    warm interpreters (`IMPORTER_WARM_SPARES`): only the tests about warm starts pay for
    them. The group's work pool and deployments get a name prefix of their own, as do the
    runs this process creates for it, so no run left on the session's Prefect server by an
    earlier test reaches these workers.
    """
    prefix = f"w{uuid.uuid4().hex[:8]}-"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "IMPORTER_"))}
    base |= {
        "IMPORTER_DATA_DIR": str(data_dir),
        **gate_env(hold_dir(data_dir)),
        # The database the test switched to (a throwaway PostgreSQL one, where parametrised).
        **{
            k: v
            for k, v in os.environ.items()
            if k in ("IMPORTER_DATABASE_URL", "IMPORTER_STORAGE_URL")
        },
        "PREFECT_API_URL": prefect_api,
        "PREFECT_HOME": str(data_dir / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "IMPORTER_NAME_PREFIX": prefix,
        "IMPORTER_WARM_SPARES": str(spares),
        **FAST_RECOVERY,
        **env,
    }
    workers = Workers(base, data_dir.parent)
    before = os.environ.get("IMPORTER_NAME_PREFIX")
    os.environ["IMPORTER_NAME_PREFIX"] = prefix
    get_settings.cache_clear()
    try:
        for _ in range(count):
            workers.start()
        yield workers
    finally:
        for proc in workers.procs:
            for pid in [*descendants(proc.pid), proc.pid]:
                _signal(pid, signal.SIGKILL)
            proc.wait()
        if before is None:
            os.environ.pop("IMPORTER_NAME_PREFIX", None)
        else:
            os.environ["IMPORTER_NAME_PREFIX"] = before
        get_settings.cache_clear()


def hold_dir(data_dir: Path) -> Path:
    """Where tests arm gates for the workers or stack of `data_dir`."""
    return data_dir.parent / "holds"


def _signal(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children first)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def process_started_at(pid: int) -> float:
    """When `pid` was started (a Unix timestamp, to 1/100 s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    since_boot = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - since_boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def is_spare(pid: int) -> bool:
    """True when `pid` is a warm interpreter a worker prepared ahead of its run: forked from
    its template (a fork keeps the template's command line) or started as a spare."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    return b"deployments.forkserver" in command or b"deployments.spare" in command


def flow_run_created_at(flow_run_id: uuid.UUID) -> float:
    """When Prefect created the flow run (a Unix timestamp)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        created = client.read_flow_run(flow_run_id).created
    assert created is not None
    return created.timestamp()


def flow_run_process(flow_run_id: uuid.UUID, timeout: float = 60) -> int:
    """The pid of the process that carries out `flow_run_id` (as its worker told Prefect)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            pid = client.read_flow_run(flow_run_id).infrastructure_pid
            if pid:
                return int(pid.rsplit(":", 1)[-1])
            time.sleep(0.1)
    needle = str(flow_run_id).encode()
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if needle in (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
        time.sleep(0.1)
    raise AssertionError(f"no process runs flow run {flow_run_id}")


def freeze_between_transactions(pid: int, database: Path) -> None:
    """SIGSTOP `pid` at a moment it holds no write transaction.

    A process frozen inside one would hold SQLite's write lock (or, on PostgreSQL, its row
    locks) and stall everyone; what this test is about is a process that sleeps between
    batches (a pause, a partition) and wakes up after its job moved on.
    """
    for _ in range(200):
        os.kill(pid, signal.SIGSTOP)
        try:
            with sqlite3.connect(database, timeout=0.3, isolation_level=None) as probe:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # frozen mid-transaction: let it finish, try again
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.02 + random.random() * 0.05)
    raise AssertionError("could not freeze the run between two transactions")


@dataclass
class Gate:
    """A pause point armed for one file name: its import stops between two batches once it
    has committed `after_rows` rows, and stays there until released (`tests/plugins/importer_test_gates.py`)."""

    hold_dir: Path
    filename: str

    @property
    def _file(self) -> Path:
        return self.hold_dir / self.filename

    def arm(self, after_rows: int) -> None:
        self.hold_dir.mkdir(parents=True, exist_ok=True)
        self._file.write_text(str(after_rows))

    def wait_held(self, timeout: float = 180) -> int:
        """The pid of the run once it waits at the gate."""
        marker = self.hold_dir / f"{self.filename}.held"
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert self._file.exists(), "the gate was released before the import reached it"
            assert time.monotonic() < deadline, f"no import of {self.filename} reached the gate"
            time.sleep(0.01)
        return int(marker.read_text())

    def release(self) -> None:
        self._file.unlink(missing_ok=True)


@contextmanager
def import_gate(hold_dir: Path, filename: str, *, after_rows: int = 1) -> Iterator[Gate]:
    """Arm a gate for `filename` for the block's length (released at the end at the latest)."""
    gate = Gate(hold_dir, filename)
    gate.arm(after_rows)
    try:
        yield gate
    finally:
        gate.release()


@contextmanager
def held(gate: Gate) -> Iterator[int]:
    """Wait until the gated import is held mid-way, yield its pid, then let it go on, so a
    user's action in the block lands mid-import however fast this machine writes."""
    try:
        yield gate.wait_held()
    finally:
        gate.release()


def _job_column(database: Path, job_id: str, column: str) -> Any:
    """One column of a job, read straight from a stack's SQLite database."""
    with sqlite3.connect(database, timeout=5) as db:
        found = db.execute(
            f"SELECT {column} FROM import_job WHERE id = ?", (uuid.UUID(job_id).hex,)
        ).fetchone()
    assert found is not None and found[0] is not None, f"job {job_id} has no {column}"
    return found[0]


def parent_of(pid: int) -> int:
    """The parent pid of `pid`."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def worker_of(run_pid: int) -> int:
    """The worker a run's process belongs to: its parent, or its parent's parent when the
    run is a spare forked by the worker's template process."""
    parent = parent_of(run_pid)
    if b"deployments.forkserver" in Path(f"/proc/{parent}/cmdline").read_bytes():
        return parent_of(parent)
    return parent


def queue_import(path: Path, *, start: bool = True) -> uuid.UUID:
    """Store `path` and create its job asking for a run, as an upload does; with `start`,
    create that run now, as the API's dispatcher would right after answering."""
    options = JobOptions(batch_size=int(FAST_RECOVERY["IMPORTER_BATCH_SIZE"]))
    with session_scope() as session:
        job = job_for_path(
            session, path, source=JobSource.UPLOAD, options=options, ask_for_run=True
        )
        job_id = job.id

    async def dispatch() -> None:
        trigger = PrefectTrigger()
        try:
            deadline = time.monotonic() + 120
            # The workers register the deployment a few seconds after they start.
            while await dispatch_once(trigger, get_settings(), only=job_id):
                assert time.monotonic() < deadline, (
                    f"no run for job {job_id}: {vars(job_row(job_id))}"
                )
                await asyncio.sleep(0.5)
        finally:
            await trigger.aclose()

    if start:
        asyncio.run(dispatch())
    return job_id


def job_row(job_id: uuid.UUID) -> ImportJob:
    """The job as stored now."""
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        return job


def wait_until(job_id: uuid.UUID, check: Any, timeout: float = 180, what: str = "") -> ImportJob:
    """Poll the job row until `check(job)` holds."""
    deadline = time.monotonic() + timeout
    while not check(job := job_row(job_id)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not reached in {timeout} s: {vars(job)}")
        time.sleep(0.05)
    return job


# A mixed import, and what an uninterrupted run of it ends with (the contract decides it).
SEEDED, ROWS = 1000, 12_000


def seed_items() -> None:
    """SKUs K-000000..K-000999 stored before the import."""
    with session_scope() as session:
        session.add_all(
            Item(sku=f"K-{i:06d}", name=f"Item {i}", price=Decimal(2), quantity=i)
            for i in range(SEEDED)
        )


def write_mixed(path: Path) -> Path:
    """500 unchanged, 500 updated, 11,000 new and 2 invalid rows."""
    rows: list[list[Any]] = [["SKU", "Name", "Price", "Qty"]]
    for i in range(ROWS):
        rows.append([f"K-{i:06d}", f"Item {i}", 2.0 if i < 500 else 3.0, i])
        if i == 5000:
            rows += [["K-BAD", "Bad price", "abc", 1], ["K-000007", "Twice", 1, 1]]
    return write_xlsx(path, rows)


EXPECTED_COUNTS = {
    "status": "completed",
    "total_rows": ROWS + 2,
    "processed_rows": ROWS + 2,
    "created": ROWS - SEEDED,
    "updated": 500,
    "unchanged": 500,
    "failed": 2,
}


def counts(job: ImportJob) -> dict[str, Any]:
    """The job's outcome as a user reads it."""
    return {
        k: (str(getattr(job, k)) if k == "status" else getattr(job, k)) for k in EXPECTED_COUNTS
    }


def expected_items() -> dict[str, tuple[Any, ...]]:
    """The item table after an uninterrupted import of `write_mixed`."""
    return {
        f"K-{i:06d}": (f"Item {i}", Decimal(2) if i < 500 else Decimal(3), i) for i in range(ROWS)
    }


def stored_items() -> dict[str, tuple[Any, ...]]:
    """The item table now."""
    with session_scope(write=False) as session:
        rows = session.execute(select(Item.sku, Item.name, Item.price, Item.quantity)).all()
    return {sku: (name, Decimal(price).quantize(Decimal(1)), qty) for sku, name, price, qty in rows}
