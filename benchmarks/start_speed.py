"""Measure how soon `importer up` answers and is ready, on a new data dir and on one used before.

    uv run python benchmarks/start_speed.py [--runs 3] [--timeline]

Each round starts `importer up` (its own Prefect server, SQLite, the default settings) on
free ports and a new data dir, stops it with Ctrl-C once ready, and starts it again on the
same data dir. It prints, per start, the seconds to the first HTTP 200 of `/api/health` and
to `ready`, and CPU-seconds the whole process tree spent until ready; with `--timeline`,
every line the stack printed with the second it came. `BENCH_ROOT` names another checkout to
measure (its own code and virtualenv), for before/after figures in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parent.parent).resolve()
PYTHON = ROOT / ".venv" / "bin" / "python"
TIMEOUT_S = 240.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu_s(pid: int) -> float:
    """CPU-seconds (user + system) of `pid` and every live process below it."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15).
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        stats[int(entry.name)] = sum(int(f) for f in fields[11:15]) / ticks
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


def start_once(data_dir: Path) -> dict[str, Any]:
    """Start `importer up` on `data_dir`; seconds to the first 200 and to ready; stop it."""
    port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "IMPORTER_"))}
    env |= {
        "IMPORTER_DATA_DIR": str(data_dir),
        "IMPORTER_PORT": str(port),
        "IMPORTER_PREFECT_PORT": str(prefect_port),
    }
    lines: list[tuple[float, str]] = []
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(PYTHON), "-m", "cli.main", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append((time.monotonic() - started, raw.decode("utf-8", "replace").rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    first_200 = ready = None
    cpu = 0.0
    try:
        while time.monotonic() - started < TIMEOUT_S:
            if first_200 is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success:
                        first_200 = time.monotonic() - started
                except httpx.HTTPError:
                    pass
            if any("ready" in text and "web page" in text for _, text in lines):
                ready = next(t for t, text in lines if "ready" in text and "web page" in text)
                cpu = tree_cpu_s(proc.pid)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        reader.join(5)
    if ready is None:
        tail = "\n".join(text for _, text in lines[-30:])
        raise SystemExit(f"importer up did not get ready:\n{tail}")
    return {"first_200_s": first_200, "ready_s": ready, "cpu_s": cpu, "lines": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="rounds (a new, then a used data dir)")
    parser.add_argument("--timeline", action="store_true", help="print what the stack printed")
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"new": [], "used": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="start-speed-") as tmp:
            data_dir = Path(tmp) / "var"
            for kind in ("new", "used"):
                result = start_once(data_dir)
                results[kind].append(result)
                if args.timeline:
                    print(f"--- {kind} data dir")
                    for at, text in result["lines"]:
                        print(f"{at:6.2f}  {text}")
    print(f"importer up in {ROOT.name}, {os.cpu_count()} cores")
    print(f"{'data dir':<10}{'first 200 (s)':>28}{'ready (s)':>28}{'CPU-s to ready':>22}")
    for kind, runs in results.items():
        cells = []
        for key in ("first_200_s", "ready_s", "cpu_s"):
            values = [r[key] for r in runs if r[key] is not None]
            each = ", ".join(f"{v:.1f}" for v in values)
            cells.append(f"{statistics.median(values):.1f} ({each})")
        print(f"{kind:<10}{cells[0]:>28}{cells[1]:>28}{cells[2]:>22}")
    out = Path(__file__).resolve().parent / "results" / "start_speed.json"
    out.parent.mkdir(exist_ok=True)
    summary = {
        k: [{n: v for n, v in r.items() if n != "lines"} for r in rs] for k, rs in results.items()
    }
    out.write_text(json.dumps({"root": ROOT.name, "runs": summary}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
