"""`importer up`: a Prefect server, a worker serving the deployments and the API, as one."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import httpx
from rich.console import Console

from itemsheet.sandbox.processes import alive, group_alive
from settings import Settings, make_private_dir

STARTUP_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 30.0
# Settings of the Prefect server `importer up` starts (unless the user set them): on SQLite
# every write waits for one lock, so the services that write most batch their writes, and
# services a single-machine stack does not need are off. The scheduler (reimport schedules),
# the repossessor (concurrency slots), cancellation clean-up and the triggers (automations)
# stay on; the task-run recorder and event persister still record all the UI shows.
QUIET_PREFECT_SERVER = {
    # One write transaction per 200 task-run state events (default: one each), at most 1 s late.
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "2",
    # Late-run marking (runs start within a second here), the foreman (the API reads worker
    # heartbeats itself) and pause expirations (no flow pauses): writes nobody reads.
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
}


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In a child, before it runs: SIGTERM it when `importer up` dies, even by SIGKILL
    (Linux; elsewhere a stale stack is replaced at the next start instead)."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Stack:
    """The processes `importer up` started, stopped in reverse order.

    Their process groups are recorded in `pid_file` while they run, so a stack whose
    `importer up` was killed before it could stop them is found and stopped by the next.
    """

    console: Console
    pid_file: Path | None = None
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], env: dict[str, str]) -> None:
        """Start one process in its own process group, so Ctrl-C reaches only us first."""
        proc = subprocess.Popen(
            list(args),
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.processes.append((name, proc))
        self._record()

    def _record(self) -> None:
        if self.pid_file is None:
            return
        groups = {name: proc.pid for name, proc in self.processes}
        self.pid_file.write_text(json.dumps({"owner": os.getpid(), "groups": groups}))

    def replace_stale(self) -> int:
        """Stop what a killed `importer up` on this data dir left running; how many groups."""
        if self.pid_file is None or not self.pid_file.exists():
            return 0
        try:
            recorded = json.loads(self.pid_file.read_text())
            owner, groups = int(recorded["owner"]), dict(recorded["groups"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        if owner != os.getpid() and alive(owner):
            raise RuntimeError(
                f"another `importer up` (pid {owner}) is running on this data directory;"
                " stop it first"
            )
        stale = [int(pgid) for pgid in groups.values() if group_alive(int(pgid))]
        for pgid in stale:
            with suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(group_alive(g) for g in stale) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pgid in stale:
            with suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return len(stale)

    def exited(self) -> str | None:
        """The name of a process that has stopped on its own, if any."""
        return next((name for name, proc in self.processes if proc.poll() is not None), None)

    def stop(self) -> None:
        """SIGTERM each process (newest first), then SIGKILL what is left."""
        for name, proc in reversed(self.processes):
            if proc.poll() is None:
                # A terminal that went away must not leave the rest of the stack running.
                with suppress(OSError):
                    self.console.print(f"stopping {name} ...")
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            # What the leader left in its group (a server's own children) goes with it.
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)


def _migration_marker(prefect_home: Path) -> Path:
    """The file that says this Prefect home's database was migrated by this Prefect version."""
    return prefect_home / f"migrated-by-prefect-{version('prefect')}"


def _migrated_once(prefect_home: Path) -> dict[str, str]:
    """Settings that skip the server's migration check when this Prefect version has
    migrated this home's database before (about 2 CPU-s of Alembic reading Prefect's
    hundreds of migration scripts at every start); none for a new home, a new Prefect
    version, or a database configured elsewhere."""
    elsewhere = any(
        name in os.environ
        for name in (
            "PREFECT_SERVER_DATABASE_CONNECTION_URL",
            "PREFECT_API_DATABASE_CONNECTION_URL",
            "PREFECT_SERVER_DATABASE_MIGRATE_ON_START",
            "PREFECT_API_DATABASE_MIGRATE_ON_START",
        )
    )
    migrated = _migration_marker(prefect_home).exists() and (prefect_home / "prefect.db").exists()
    if elsewhere or not migrated:
        return {}
    return {"PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false"}


def _wait_ready(url: str, stack: Stack) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if (name := stack.exited()) is not None:
            raise RuntimeError(f"{name} stopped while the service was starting")
        try:
            if httpx.get(url, timeout=2).json().get("ready") is True:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the service was not ready at {url} within {STARTUP_TIMEOUT_S:.0f} s")


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (a service manager stopping us) ends the stack like Ctrl-C does. SIGINT too,
    # explicitly: a shell starts a background command with SIGINT ignored, and Python
    # then keeps ignoring it.
    raise KeyboardInterrupt


def run_stack(settings: Settings, console: Console, prepare: Callable[[], object]) -> int:
    """Start everything, print the URLs, wait for Ctrl-C (or a crash), stop everything.

    `prepare` (the importer database's migrations) runs once the Prefect server is
    starting, the longest part of a start, and before the worker and the API."""
    env = dict(os.environ)
    # `--host` and `--port` reach the processes' links (events, artifacts) through this.
    env.setdefault("IMPORTER_PUBLIC_URL", settings.public_base_url())
    bin_dir = Path(sys.executable).parent
    # Created here first, before any of its files: no other local user may look inside.
    run_dir = make_private_dir(settings.data_dir.resolve())
    stack = Stack(console, pid_file=run_dir / "stack.json")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        if replaced := stack.replace_stale():
            console.print(f"stopped {replaced} process group(s) a killed `importer up` left")
        if "PREFECT_API_URL" not in env:
            prefect_home = make_private_dir(run_dir / "prefect")
            env["PREFECT_HOME"] = str(prefect_home)
            env["PREFECT_API_URL"] = f"http://127.0.0.1:{settings.prefect_port}/api"
            env.setdefault("PREFECT_UI_URL", f"http://127.0.0.1:{settings.prefect_port}")
            console.print(f"starting Prefect server on port {settings.prefect_port} ...")
            server_env = {**QUIET_PREFECT_SERVER, **_migrated_once(prefect_home), **env}
            stack.start(
                "prefect server",
                [
                    str(bin_dir / "prefect"),
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(settings.prefect_port),
                ],
                server_env,
            )
        prepare()
        # The worker and the API start while the Prefect server does (the worker waits for
        # it before serving): on two cores this saves about ten seconds of start-up.
        console.print("starting the worker and the API ...")
        stack.start("worker", [sys.executable, "-m", "cli.main", "worker"], env)
        stack.start(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:app",
                "--host",
                settings.host,
                "--port",
                str(settings.port),
                "--log-level",
                "warning",
            ],
            env,
        )
        # Ready means an upload would start its run at once: the API answers, Prefect
        # has the deployment and a worker with a warm interpreter polls for it. (An upload
        # sent earlier is accepted all the same; it waits, pending, until then.)
        _wait_ready(f"http://{settings.host}:{settings.port}/api/health", stack)
        if "PREFECT_HOME" in env and "PREFECT_API_URL" not in os.environ:
            _migration_marker(Path(env["PREFECT_HOME"])).touch()
        ui = env.get("PREFECT_UI_URL") or env["PREFECT_API_URL"].removesuffix("/api")
        console.print(
            f"[bold green]ready[/]  web page and API: http://{settings.host}:{settings.port}/"
        )
        console.print(f"       API docs: http://{settings.host}:{settings.port}/docs")
        console.print(f"       Prefect UI: {ui}")
        console.print("press Ctrl-C to stop")
        while (name := stack.exited()) is None:
            time.sleep(0.5)
        console.print(f"[red]{name} stopped unexpectedly; stopping the rest[/]")
        return 1
    except KeyboardInterrupt:
        console.print("stopping ...")
        return 0
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        # A second Ctrl-C (or SIGTERM) while the stack stops must not leave it stopped
        # half-way: each process is killed anyway after STOP_TIMEOUT_S.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # The worker leaves the jobs of its own runs to be resumed as it stops; jobs that
        # other workers on a shared database carry out go on.
        stack.stop()
