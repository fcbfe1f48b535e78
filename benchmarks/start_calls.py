"""Where a run's start goes, call by call: every HTTP request each process of the stack
sends to Prefect (or anywhere) between an upload and its job's `processing`.

    uv run python benchmarks/start_calls.py [--uploads 5] [--gap 3] [--review] [--profile DIR]

Starts `importer up` (default settings, warm spares) with a `sitecustomize` on its
`PYTHONPATH` that times each `httpx` request in every process of the stack (the API, the
worker, the forked runs) into one log, then uploads a 10,000-row workbook `--uploads`
times, a few seconds apart, each followed to its end. For each upload it prints the
requests sent from POST until the job shows `processing`, in order: when each began
(seconds after POST), how long it took, which process sent it (`api`, `worker`, `run`) and
what it asked; then, over all uploads, the median count and time per kind of request.
With `--review` the uploads ask for review, and the window is POST -> `awaiting_review`;
`--profile DIR` also writes a cProfile of each run's process (Prefect's engine and the flow,
from the order it receives to its exit) into DIR. `BENCH_ROOT` names another checkout to
measure, as for the other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parent.parent).resolve()
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from sheets import item_rows, write_xlsx  # noqa: E402

from devtools.stack import running_stack  # noqa: E402

# Loaded by every Python process of the stack (it is on their PYTHONPATH): wraps httpx's
# `send` of both clients to log one JSON line per request.
SITECUSTOMIZE = """
import json, os, sys, time

_LOG = os.environ.get("BENCH_CALLS_LOG")


def _role():
    if os.environ.get("PREFECT__FLOW_RUN_ID"):
        return "run"
    try:
        argv = open("/proc/self/cmdline", "rb").read().split(b"\\0")
    except OSError:
        return "?"
    text = b" ".join(argv).decode(errors="replace")
    if " api" in text or "uvicorn" in text:
        return "api"
    if "worker" in text or "forkserver" in text or "spare" in text:
        return "worker"
    return text[-40:]


def _write(method, url, started, ended, status):
    line = {
        "pid": os.getpid(), "role": _role(), "method": method, "url": url,
        "t": started, "ms": (ended - started) * 1000, "status": status,
    }
    with open(_LOG, "a") as out:
        out.write(json.dumps(line) + "\\n")


if _LOG:
    import httpx

    _async_send = httpx.AsyncClient.send
    _sync_send = httpx.Client.send

    async def _timed_async(self, request, *args, **kwargs):
        started = time.time()
        status = None
        try:
            response = await _async_send(self, request, *args, **kwargs)
            status = response.status_code
            return response
        finally:
            _write(request.method, str(request.url), started, time.time(), status)

    def _timed_sync(self, request, *args, **kwargs):
        started = time.time()
        status = None
        try:
            response = _sync_send(self, request, *args, **kwargs)
            status = response.status_code
            return response
        finally:
            _write(request.method, str(request.url), started, time.time(), status)

    httpx.AsyncClient.send = _timed_async
    httpx.Client.send = _timed_sync

_PROFILES = os.environ.get("BENCH_PROFILE_DIR")
if _PROFILES:
    import runpy

    _run_module = runpy.run_module

    def _profiled(*args, **kwargs):
        # A spare's run: `deployments.spare.run_engine` runs Prefect's engine this way.
        if not os.environ.get("PREFECT__FLOW_RUN_ID"):
            return _run_module(*args, **kwargs)
        import cProfile

        profile = cProfile.Profile()
        try:
            return profile.runcall(_run_module, *args, **kwargs)
        finally:
            profile.dump_stats(os.path.join(_PROFILES, f"run-{os.getpid()}.prof"))

    runpy.run_module = _profiled
"""

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def kind(call: dict[str, Any]) -> str:
    """The request without its ids and host: what it asked."""
    url = httpx.URL(call["url"])
    path = UUID.sub("{id}", url.path)
    return f"{call['method']} {path}"


def follow(client: httpx.Client, job_id: str, wanted: str) -> tuple[float, float]:
    """Wall clock when the job first showed `wanted` (polled every 25 ms), and when it ended."""
    seen = None
    while True:
        job = client.get(f"/api/excel/import/{job_id}/progress").json()
        now = time.time()
        if seen is None and job["status"] in (wanted, "completed", "awaiting_review"):
            seen = now
        if job["status"] in ("completed", "failed", "cancelled", "awaiting_review"):
            return seen or now, now
        time.sleep(0.025)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between uploads")
    parser.add_argument("--review", action="store_true")
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of each run's process into this folder"
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds between `ready` and the first upload"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="importer-start-calls-"))
    hook = work / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = work / "calls.jsonl"
    small = write_xlsx(work / "items-10k.xlsx", item_rows(0, 10_000)).read_bytes()
    wanted = "awaiting_review" if args.review else "processing"
    windows: list[tuple[float, float, float]] = []  # POST, wanted, ended
    env = {"PYTHONPATH": str(hook), "BENCH_CALLS_LOG": str(log)}
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        env["BENCH_PROFILE_DIR"] = str(args.profile.resolve())
    with (
        running_stack(work / "var", spares=True, extra_env=env) as stack,
        httpx.Client(base_url=stack.api, timeout=60) as client,
    ):
        time.sleep(args.settle)
        for _ in range(args.uploads):
            posted = time.time()
            response = client.post(
                "/api/excel/import",
                files={"file": ("items-10k.xlsx", small)},
                data={"force": "true", "review": str(args.review).lower()},
            )
            assert response.status_code == 202, response.text
            seen, ended = follow(client, response.json()["job_id"], wanted)
            windows.append((posted, seen, ended))
            time.sleep(args.gap)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    # The benchmark's own polls of the API are not the stack's.
    calls = [c for c in calls if "/api/excel/" not in c["url"]]
    per_kind: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for number, (posted, seen, _) in enumerate(windows, 1):
        inside = sorted((c for c in calls if posted <= c["t"] <= seen), key=lambda c: c["t"])
        print(f"\nupload {number}: POST -> {wanted} {seen - posted:.3f} s")
        counted: dict[str, list[float]] = defaultdict(list)
        for call in inside:
            what = f"{call['role']:6} {kind(call)}"
            counted[what].append(call["ms"])
            print(f"  +{call['t'] - posted:6.3f} s {call['ms']:7.1f} ms  {what}")
        for what in set(per_kind) | set(counted):
            times = counted.get(what, [])
            per_kind[what].append((len(times), sum(times)))
    print(f"\nper upload, median over {len(windows)} (count, ms), by process and request:")
    rows = sorted(per_kind.items(), key=lambda kv: -statistics.median(ms for _, ms in kv[1]))
    total_n = total_ms = 0.0
    for what, seen_ in rows:
        seen_ = seen_ + [(0, 0.0)] * (len(windows) - len(seen_))
        n = statistics.median(c for c, _ in seen_)
        ms = statistics.median(m for _, m in seen_)
        total_n += n
        total_ms += ms
        print(f"  {n:4.1f} {ms:8.1f} ms  {what}")
    print(f"  {total_n:4.1f} {total_ms:8.1f} ms  in all (sum of medians)")
    spans = [seen - posted for posted, seen, _ in windows]
    print(f"POST -> {wanted}: median {statistics.median(spans):.3f} s, each {spans}")


if __name__ == "__main__":
    main()
