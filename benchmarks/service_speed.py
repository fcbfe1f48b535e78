"""Measure the service as clients meet it: upload latency, start and finish times, polling.

    uv run python benchmarks/service_speed.py [--uploads 30] [--pollers 200]

Starts `importer up` on free ports with a private data dir, then
  * uploads a 10,000-row workbook `--uploads` times (force=true, one at a time) and
    reports POST latency p50/p99, time from POST to `processing` and to `completed`
    for the first few;
  * runs `--pollers` concurrent clients polling one job's progress and reports p50/p99.
Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.contract.workbooks import write_xlsx  # noqa: E402
from tests.e2e.stack import running_stack  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def follow(client: httpx.Client, job_id: str, posted: float) -> tuple[float, float]:
    """Seconds from POST until processing and until completed."""
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
    parser.add_argument("--uploads", type=int, default=30)
    parser.add_argument("--followed", type=int, default=3, help="uploads followed to completion")
    parser.add_argument("--pollers", type=int, default=200)
    parser.add_argument("--poll-seconds", type=float, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="importer-service-bench-"))
    rows = [["SKU", "Name", "Price", "Qty"]] + [
        [f"B-{i:06d}", f"Item {i}", 1.5, i] for i in range(10_000)
    ]
    sheet = write_xlsx(work / "items-10k.xlsx", rows)
    data = sheet.read_bytes()
    results: dict[str, Any] = {"rows": 10_000, "file_bytes": len(data)}
    with (
        running_stack(work / "var") as stack,
        httpx.Client(base_url=stack.api, timeout=60) as client,
    ):
        posts: list[float] = []
        starts: list[float] = []
        finishes: list[float] = []
        job_ids = []
        for i in range(args.uploads):
            started = time.perf_counter()
            response = client.post(
                "/api/excel/import",
                files={"file": ("items-10k.xlsx", data)},
                data={"force": "true"},
            )
            posts.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["job_id"])
            if i < args.followed:
                to_processing, to_done = follow(client, job_ids[-1], started)
                starts.append(to_processing)
                finishes.append(to_done)
        print(f"uploads: p50 {pct(posts, 50):.0f} ms, p99 {pct(posts, 99):.0f} ms", file=sys.stderr)
        if shutil.which("wrk"):
            storm = poll_storm_wrk(stack.api, job_ids[0], args.pollers, args.poll_seconds)
        else:
            polls = asyncio.run(poll_storm(stack.api, job_ids[0], args.pollers, args.poll_seconds))
            storm = {
                "p50": pct(polls, 50),
                "p99": pct(polls, 99),
                "n": len(polls),
                "clients": args.pollers,
                "per_s": round(len(polls) / args.poll_seconds),
                "tool": "httpx (install wrk for a client that is not the bottleneck)",
            }
        results |= {
            "post_ms": {"p50": pct(posts, 50), "p99": pct(posts, 99), "n": len(posts)},
            "post_to_processing_s": {"median": statistics.median(starts), "n": len(starts)},
            "post_to_completed_s": {"median": statistics.median(finishes), "n": len(finishes)},
            "progress_poll_ms": storm,
        }
    table = [
        (
            "10,000-row upload: POST latency p50 / p99",
            f"{results['post_ms']['p50']:.0f} / {results['post_ms']['p99']:.0f} ms ({len(posts)} uploads)",
        ),
        ("POST -> processing (median)", f"{results['post_to_processing_s']['median']:.2f} s"),
        ("POST -> completed (median)", f"{results['post_to_completed_s']['median']:.2f} s"),
        (
            f"{args.pollers} concurrent progress polls p50 / p99",
            f"{storm['p50']:.0f} / {storm['p99']:.0f} ms ({storm['per_s']:.0f} req/s, {storm['tool']})",
        ),
    ]
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"service_speed-{uuid.uuid4().hex[:6]}.json"
    target.write_text(json.dumps(results, indent=2))
    print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
