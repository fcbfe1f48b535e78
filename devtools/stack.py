"""Start `importer up` as a user would, on free ports and a private data dir."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningStack:
    """Where the started stack answers."""

    api: str
    prefect_api: str
    data_dir: Path
    log: Path
    env: dict[str, str]
    hold_dir: Path
    pid: int  # of `importer up` itself
    name_prefix: str = ""  # of its work pool and deployments (IMPORTER_NAME_PREFIX)

    def deployment(self, flow: str, deployment: str) -> str:
        """The `flow/deployment` name this stack's worker serves `deployment` under."""
        return f"{flow}/{self.name_prefix}{deployment}"


@contextmanager
def running_stack(
    data_dir: Path,
    *,
    prefect_api: str | None = None,
    spares: bool = False,
    extra_env: Mapping[str, str] | None = None,
    wait_ready: bool = True,
    sigint_ignored: bool = False,
    fresh_prefect: bool = False,
    **settings: str,
) -> Iterator[RunningStack]:
    """`importer up`, stopped with SIGINT like Ctrl-C.

    Without `prefect_api` it starts its own Prefect server, as a user's does. With it (the
    session's `prefect_server`) it starts none: its processes use that server, under a name
    prefix of their own (IMPORTER_NAME_PREFIX: the work pool `<prefix>importer`, the
    deployments `<flow>/<prefix><name>`), so its worker takes only its own runs and several
    stacks share one server. A new prefix is made unless `name_prefix` is given (a stack
    restarted on the same data dir keeps its prefix). That saves a stack the CPU of a
    Prefect server; what differs: `prefect_api` is the shared server's, whose runs, events
    and automations are every stack's (filter them by job), and its services are those of
    Prefect's test server (no scheduler: nothing runs on a cron).

    The worker keeps no warm spares (IMPORTER_WARM_SPARES=0: each run starts a fresh
    process) unless `spares=True`, for tests of the start-up a user gets, spares and all.

    The stack sees none of this process's PREFECT_* and IMPORTER_* variables, only
    `settings` (as IMPORTER_<NAME>) and `extra_env`. With `wait_ready=False` it is yielded
    as soon as it was started, for tests of the start-up itself. `sigint_ignored` starts it
    as a shell starts a background command: with SIGINT ignored.

    A new data dir of a stack given no PREFECT_* settings gets its Prefect home (database
    and block registry) copied from one Prefect server started once, as the importer's
    test databases are copied from a migrated template: that saves each stack about 10 s
    of CPU spent migrating a new Prefect database and registering its block types.
    `fresh_prefect=True` starts from nothing, as a new user does.
    """
    port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "IMPORTER_"))}
    env |= dict(extra_env or {})
    if prefect_api is not None:
        settings.setdefault("name_prefix", new_name_prefix())
        # The clients' own Prefect home (profiles, local storage), not the user's ~/.prefect.
        env |= {
            "PREFECT_API_URL": prefect_api,
            "PREFECT_HOME": str(data_dir.parent / "prefect-client"),
        }
    if not spares:
        settings.setdefault("warm_spares", "0")
    holds = data_dir.parent / "holds"
    env |= {
        "IMPORTER_DATA_DIR": str(data_dir),
        **gate_env(holds, env.get("PYTHONPATH", "")),
        "IMPORTER_PORT": str(port),
        "IMPORTER_PREFECT_PORT": str(prefect_port),
        **{f"IMPORTER_{k.upper()}": v for k, v in settings.items()},
    }
    log = data_dir.parent / "stack.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    # Only a stack left to its own Prefect server on SQLite (no PREFECT_* settings given).
    own_server = prefect_api is None and not any(n.startswith("PREFECT_") for n in extra_env or {})
    if own_server and not fresh_prefect and not (data_dir / "prefect").exists():
        shutil.copytree(prefect_home_template(), data_dir / "prefect")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )
    api = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while wait_ready and b"ready" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"importer up did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        prefect_api = prefect_api or f"http://127.0.0.1:{prefect_port}/api"
        env = env | {"PREFECT_API_URL": prefect_api}
        prefix = settings.get("name_prefix", "")
        yield RunningStack(api, prefect_api, data_dir, log, env, holds, proc.pid, prefix)
    finally:
        _interrupt(proc)


def new_name_prefix() -> str:
    """A name prefix no other stack or worker on a shared Prefect server has."""
    return f"t{uuid.uuid4().hex[:10]}-"


# The stack the functional tests of each test process share (`shared_stack` in
# tests/conftest.py): small batches, so an import lasts long enough to watch, hold, cancel
# and resume; a 1 MiB upload limit, so that a refused upload costs nothing (big enough for
# the page's 30,000-row workbook); scheduled reimports may read `feeds` beside the data
# dir. Each test uses file names and SKU prefixes of its own.
MAX_UPLOAD_BYTES = 1_048_576
SHARED_BATCH_SIZE = "100"


SHARED_REVIEW_HOLD_S = 10


@contextmanager
def shared_stack(root: Path, prefect_api: str) -> Iterator[RunningStack]:
    """`importer up` under `root` on the Prefect server at `prefect_api`, no warm spares."""
    (root / "feeds").mkdir(parents=True, exist_ok=True)
    with running_stack(
        root / "var",
        prefect_api=prefect_api,
        reimport_allowed=str(root / "feeds"),
        batch_size=SHARED_BATCH_SIZE,
        max_upload_bytes=str(MAX_UPLOAD_BYTES),
        # A review's run waits in its process this long before it suspends: short enough
        # that the tests of a suspended review do not wait two minutes for it.
        review_hold_s=str(SHARED_REVIEW_HOLD_S),
    ) as running:
        yield running


PLUGINS = ROOT / "tests" / "plugins"


def gate_env(holds: Path, pythonpath: str | None = None) -> dict[str, str]:
    """The environment that gives the processes of a stack or worker the test harness's gate
    between two batches (`tests/plugins/importer_test_gates.py`), armed in `holds`; the
    gate's folder goes before `pythonpath` (default: this process's PYTHONPATH)."""
    if pythonpath is None:
        pythonpath = os.environ.get("PYTHONPATH", "")
    path = os.pathsep.join(p for p in (str(PLUGINS), pythonpath) if p)
    return {"PYTHONPATH": path, "TEST_GATE_DIR": str(holds)}


def prefect_home_template() -> Path:
    """A Prefect home whose server has started and stopped once: a migrated database and
    its block types registered. Made once per Prefect version (under a lock, so that
    parallel test processes make it once) in the temporary directory, and kept there."""
    import prefect

    base = Path(tempfile.gettempdir())
    template = base / f"importer-tests-prefect-home-{prefect.__version__}-{os.getuid()}"
    if (template / "prefect.db").exists():
        return template
    with (base / f"{template.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / "prefect.db").exists():
            _make_prefect_home(template)
    return template


def _make_prefect_home(template: Path) -> None:
    building = Path(tempfile.mkdtemp(prefix=f"{template.name}-", dir=template.parent))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(building), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
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
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("a Prefect server for the template did not start")
            time.sleep(0.2)
    finally:
        _interrupt(server)
    building.rename(template)


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process group started with `start_new_session` as Ctrl-C does (SIGKILL after
    60 s); nothing to do if its leader has already exited."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_for(
    client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 120
) -> dict[str, Any]:
    """Poll a job's progress until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/excel/import/{job_id}/progress").json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")
        time.sleep(0.2)


def final_flow_run(prefect_api: str, flow_run_id: str, timeout: float = 60) -> Any:
    """The Prefect flow run once it reached a final state (or as it is at `timeout`).

    A job ends inside its run; Prefect records the run's final state only after the flow
    function returns, a moment later.
    """
    from prefect.client.orchestration import SyncPrefectClient

    deadline = time.monotonic() + timeout
    with SyncPrefectClient(prefect_api) as prefect:
        run = prefect.read_flow_run(flow_run_id)  # type: ignore[arg-type]
        while not (run.state and run.state.is_final()) and time.monotonic() < deadline:
            time.sleep(0.5)
            run = prefect.read_flow_run(flow_run_id)  # type: ignore[arg-type]
    return run
