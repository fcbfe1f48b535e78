"""Measure the service as clients meet it: how soon an upload answers, starts and ends.

    uv run python benchmarks/service_speed.py [--sequential 10] [--loaded 30] [--pollers 200]

Starts `importer up` on free ports with a private data dir (and waits for "ready"), then
  * uploads a 10,000-row workbook `--sequential` times, one at a time, each followed to
    the end: POST latency, POST -> `processing`, POST -> `completed`;
  * uploads it `--reviews` times with review: POST -> `awaiting_review` (its preview),
    confirm -> `completed`, and then an undo of it: POST undo -> `completed`;
  * starts two 300,000-row imports and, every 0.2 s until both have ended (and at least
    `--loaded` times), uploads the 10,000-row workbook: POST latency, the slowest included;
  * measures what the worker's warm spare interpreters cost once all is idle: memory
    (RSS and PSS) and CPU over `--idle-seconds`;
  * runs `--pollers` concurrent clients polling one job's progress (wrk when installed).
Prints a table and writes JSON to benchmarks/results/. `BENCH_ROOT` names another
checkout to measure (its own `importer up` and `devtools/`), for before/after figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parent.parent).resolve()
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from sheets import item_rows  # noqa: E402
from sheets import write_xlsx as write_big_xlsx  # noqa: E402

from devtools.stack import running_stack  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def follow(client: httpx.Client, job_id: str, posted: float) -> tuple[float, float]:
    """Seconds from POST until processing and until completed (polled every 50 ms)."""
    to_processing = None
    while True:
        job = client.get(f"/api/excel/import/{job_id}/progress").json()
        now = time.perf_counter() - posted
        if to_processing is None and job["status"] != "pending":
            to_processing = now
        if job["status"] in ("completed", "failed", "cancelled"):
            assert job["status"] == "completed", job
            return to_processing or now, now
        time.sleep(0.05)


def wait_status(client: httpx.Client, job_id: str, wanted: str, posted: float) -> float:
    """Seconds from POST until the job shows `wanted` (polled every 50 ms)."""
    while (shown := status(client, job_id)) != wanted:
        assert shown not in ("completed", "failed", "cancelled"), shown
        time.sleep(0.05)
    return time.perf_counter() - posted


def post(client: httpx.Client, name: str, data: bytes, guard: str = "on") -> tuple[float, str]:
    """One upload (force=true): its latency in ms and its job id."""
    started = time.perf_counter()
    response = client.post(
        "/api/excel/import",
        files={"file": (name, data)},
        data={"force": "true", "guard": guard},
    )
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 202, response.text
    return elapsed, response.json()["job_id"]


def status(client: httpx.Client, job_id: str) -> str:
    return str(client.get(f"/api/excel/import/{job_id}/progress").json()["status"])


def spare_processes() -> list[int]:
    """Pids of warm spare interpreters: the worker's template and the spares forked from
    it (a fork keeps the template's command line), spares started as interpreters, and
    their parse children."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if any(
                name in cmdline
                for name in (
                    b"deployments.forkserver",
                    b"deployments.spare",
                    b"itemsheet.sandbox.child --serve",
                )
            ):
                found.append(int(entry.name))
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def spare_cost(seconds: float) -> dict[str, Any]:
    """Memory and CPU of the idle spares over `seconds`."""
    pids = spare_processes()
    if not pids:
        return {"spares": 0}
    before = {pid: _cpu_ticks(pid) for pid in pids}
    time.sleep(seconds)
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    ticks = sum(_cpu_ticks(pid) - before[pid] for pid in alive)
    memory = [_memory_kib(pid) for pid in alive]
    return {
        "processes": len(alive),
        "rss_mib": round(sum(r for r, _ in memory) / 1024, 1),
        "pss_mib": round(sum(p for _, p in memory) / 1024, 1),
        "cpu_percent": round(100 * ticks / os.sysconf("SC_CLK_TCK") / seconds, 3),
        "seconds": seconds,
    }


async def poll_storm(api: str, job_id: str, clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=30) as client:

        async def one() -> None:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                started = time.perf_counter()
                try:
                    response = await client.get(f"/api/excel/import/{job_id}/progress")
                    response.raise_for_status()
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(one() for _ in range(clients)))
    if errors:
        print(f"{len(errors)} poll errors, e.g. {errors[0]}", file=sys.stderr)
    return latencies


def _ms(text: str) -> float:
    """A wrk duration ("850.00us", "932.42ms", "1.13s") in milliseconds."""
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def poll_storm_wrk(api: str, job_id: str, clients: int, seconds: float) -> dict[str, float]:
    """The same storm from wrk, a load generator that is not itself the bottleneck."""
    out = subprocess.run(
        [
            "wrk",
            f"-c{clients}",
            "-t2",
            f"-d{int(seconds)}s",
            "--latency",
            f"{api}/api/excel/import/{job_id}/progress",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    rate = re.search(r"Requests/sec:\s+(\S+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    assert p50 and p99 and rate, out
    return {
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
        "per_s": float(rate.group(1)),
        "clients": clients,
        "errors": errors.group(0) if errors else "none",
        "tool": "wrk",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequential", type=int, default=10, help="uploads followed one by one")
    parser.add_argument(
        "--loaded", type=int, default=30, help="uploads at least, every 0.2 s while big imports run"
    )
    parser.add_argument(
        "--guard-pairs",
        type=int,
        default=5,
        help="uploads with the guardrails and with guard=off, alternated, to compare",
    )
    parser.add_argument("--big-rows", type=int, default=300_000)
    parser.add_argument(
        "--reviews", type=int, default=5, help="uploads with review, confirmed, then undone"
    )
    parser.add_argument("--pollers", type=int, default=200)
    parser.add_argument("--poll-seconds", type=float, default=10)
    parser.add_argument("--idle-seconds", type=float, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="importer-service-bench-"))
    small = write_big_xlsx(work / "items-10k.xlsx", item_rows(0, 10_000)).read_bytes()
    bigs = [
        write_big_xlsx(
            work / f"big-{n}.xlsx", item_rows(n * args.big_rows, (n + 1) * args.big_rows)
        ).read_bytes()
        for n in range(2)
    ]
    results: dict[str, Any] = {"root": ROOT.name, "rows": 10_000, "file_bytes": len(small)}
    with (
        running_stack(work / "var", spares=True) as stack,
        httpx.Client(base_url=stack.api, timeout=60) as client,
    ):
        # 1. One upload at a time, each followed to its end.
        posts, starts, finishes = [], [], []
        for _ in range(args.sequential):
            started = time.perf_counter()
            latency, job_id = post(client, "items-10k.xlsx", small)
            to_processing, to_done = follow(client, job_id, started)
            posts.append(latency)
            starts.append(to_processing)
            finishes.append(to_done)
            time.sleep(0.5)
        print(f"sequential: processing {starts}, completed {finishes}", file=sys.stderr)

        # 1a. What the guardrails cost: the same upload with them and with guard=off,
        # alternated (which goes first swaps every pair), each followed to its end.
        guarded: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
        for pair in range(args.guard_pairs):
            for guard in ("on", "off") if pair % 2 == 0 else ("off", "on"):
                started = time.perf_counter()
                _, job_id = post(client, "items-10k.xlsx", small, guard=guard)
                to_done = follow(client, job_id, started)[1]
                job = client.get(f"/api/excel/import/{job_id}/progress").json()
                guarded[guard].append((to_done, float(job["elapsed_s"])))
                time.sleep(0.5)
        print(f"guardrails on / off (completed s, job s): {guarded}", file=sys.stderr)

        # 1b. With review: POST -> its preview waits, then confirm -> completed; then an
        # undo of that import: POST undo -> completed.
        previews, confirms, undos = [], [], []
        for _ in range(args.reviews):
            started = time.perf_counter()
            job_id = client.post(
                "/api/excel/import",
                files={"file": ("items-10k.xlsx", small)},
                data={"force": "true", "review": "true"},
            ).json()["job_id"]
            previews.append(wait_status(client, job_id, "awaiting_review", started))
            started = time.perf_counter()
            answer = client.post(f"/api/excel/import/{job_id}/confirm")
            assert answer.status_code == 202, answer.text
            confirms.append(follow(client, job_id, started)[1])
            started = time.perf_counter()
            undo = client.post(f"/api/excel/import/{job_id}/undo")
            assert undo.status_code == 202, undo.text
            undos.append(follow(client, undo.json()["job_id"], started)[1])
            time.sleep(0.5)
        print(f"review: preview {previews}, confirm {confirms}, undo {undos}", file=sys.stderr)

        # 2. Uploads while two big imports run: both start at once (their parses run side
        # by side; their writes take turns), and the uploads go on while either runs.
        big_jobs = [post(client, f"big-{n}.xlsx", data)[1] for n, data in enumerate(bigs)]
        deadline = time.monotonic() + 300
        while not all(status(client, j) == "processing" for j in big_jobs):
            assert time.monotonic() < deadline, "the big imports did not start"
            time.sleep(0.05)
        loaded: list[tuple[float, int]] = []  # (latency, big imports running when it answered)
        running = 2
        while running or len(loaded) < args.loaded:
            latency = post(client, "items-10k.xlsx", small)[0]
            running = sum(status(client, j) in ("pending", "processing") for j in big_jobs)
            loaded.append((latency, running))
            time.sleep(0.2)
        print(f"loaded (ms, big imports running): {loaded}", file=sys.stderr)
        during = [ms for ms, running in loaded if running == 2]
        either = [ms for ms, running in loaded if running >= 1]
        for job_id in big_jobs:
            follow(client, job_id, time.perf_counter())

        # 3. The idle cost of the warm spares, once every queued import has ended.
        deadline = time.monotonic() + 600
        while (
            client.get("/api/excel/imports", params={"status": "pending"}).json()["items"]
            or (client.get("/api/excel/imports", params={"status": "processing"}).json()["items"])
        ):
            assert time.monotonic() < deadline, "queued imports did not end"
            time.sleep(0.5)
        time.sleep(5)  # spares refilled and warmed up
        idle = spare_cost(args.idle_seconds)

        # 4. Many clients polling one job.
        if shutil.which("wrk"):
            storm = poll_storm_wrk(stack.api, big_jobs[0], args.pollers, args.poll_seconds)
        else:
            polls = asyncio.run(poll_storm(stack.api, big_jobs[0], args.pollers, args.poll_seconds))
            storm = {
                "p50": pct(polls, 50),
                "p99": pct(polls, 99),
                "n": len(polls),
                "clients": args.pollers,
                "per_s": round(len(polls) / args.poll_seconds),
                "tool": "httpx (install wrk for a client that is not the bottleneck)",
            }
    results |= {
        "post_ms": {"p50": pct(posts, 50), "max": max(posts), "n": len(posts)},
        "post_to_processing_s": {"p50": pct(starts, 50), "p90": pct(starts, 90), "all": starts},
        "post_to_completed_s": {
            "p50": pct(finishes, 50),
            "p90": pct(finishes, 90),
            "all": finishes,
        },
        "guardrails_on_off": {
            guard: {
                "post_to_completed_p50_s": pct([c for c, _ in runs], 50),
                "job_p50_s": pct([j for _, j in runs], 50),
                "all": runs,
            }
            for guard, runs in guarded.items()
        },
        "post_ms_during_big_imports": {
            "both_running": {
                "p50": pct(during, 50),
                "max": max(during, default=float("nan")),
                "n": len(during),
            },
            "one_or_both_running": {
                "p50": pct(either, 50),
                "max": max(either, default=float("nan")),
                "n": len(either),
            },
            "all_sent": loaded,
            "big_rows": args.big_rows,
        },
        "review_s": {
            "post_to_awaiting_review": {"p50": pct(previews, 50), "all": previews},
            "confirm_to_completed": {"p50": pct(confirms, 50), "all": confirms},
            "undo_to_completed": {"p50": pct(undos, 50), "all": undos},
        },
        "idle_spares": idle,
        "progress_poll_ms": storm,
    }
    table = [
        ("10,000-row upload, one at a time: POST p50", f"{pct(posts, 50):.0f} ms (n={len(posts)})"),
        (
            "POST -> processing p50 / p90",
            f"{pct(starts, 50):.2f} / {pct(starts, 90):.2f} s",
        ),
        (
            "POST -> completed p50 / p90",
            f"{pct(finishes, 50):.2f} / {pct(finishes, 90):.2f} s",
        ),
    ]
    if args.guard_pairs:
        on, off = results["guardrails_on_off"]["on"], results["guardrails_on_off"]["off"]
        table.append(
            (
                "the same with guardrails / guard=off: POST -> completed p50, job p50",
                f"{on['post_to_completed_p50_s']:.2f} / {off['post_to_completed_p50_s']:.2f} s,"
                f" {on['job_p50_s']:.2f} / {off['job_p50_s']:.2f} s"
                f" ({(on['job_p50_s'] / off['job_p50_s'] - 1) * 100:+.0f} % with them;"
                f" n={len(on['all'])} each)",
            )
        )
    table += [
        (
            "with review: POST -> awaiting_review / confirm -> completed p50",
            f"{pct(previews, 50):.2f} / {pct(confirms, 50):.2f} s (n={len(previews)})",
        ),
        ("undo of that import: POST undo -> completed p50", f"{pct(undos, 50):.2f} s"),
        (
            f"POST while two {args.big_rows:,}-row imports run: p50 / slowest",
            f"{pct(during, 50):.0f} / {max(during, default=float('nan')):.0f} ms ({len(during)} uploads)",
        ),
        (
            "POST while one or both of them run: p50 / slowest",
            f"{pct(either, 50):.0f} / {max(either, default=float('nan')):.0f} ms ({len(either)} of {len(loaded)})",
        ),
        (
            "idle warm spares: processes, RSS / PSS, CPU",
            f"{idle.get('processes', 0)}, {idle.get('rss_mib', 0)} / {idle.get('pss_mib', 0)} MiB,"
            f" {idle.get('cpu_percent', 0)} % of a core",
        ),
        (
            f"{args.pollers} concurrent progress polls p50 / p99",
            f"{storm['p50']:.0f} / {storm['p99']:.0f} ms ({storm['per_s']:.0f} req/s, {storm['tool']})",
        ),
    ]
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"service_speed-{ROOT.name}-{uuid.uuid4().hex[:6]}.json"
    target.write_text(json.dumps(results, indent=2))
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
