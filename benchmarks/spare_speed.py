"""Measure what a worker's spare costs: forked from the template, or a new interpreter.

    uv run python benchmarks/spare_speed.py [--spares 5]

Starts a worker's spare pool as the worker does, once forking from its template and once
starting each spare as `python -m deployments.spare`, and takes spares one after another:
for each, the seconds from asking to a process that exists (the fork, the exec) and to
`ready` (its imports done, its parse child started), the CPU-seconds the spare and its parse
child spent until then, and, once all are ready, their resident and proportional memory
(PSS splits pages shared with the template between the processes sharing them). The
spares warm up at normal priority, as the first ones of a starting worker do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deployments.forks import ForkServer
from deployments.spare import READY

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of `pid` in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) / 1024
    return values["Rss"], values["Pss"]


async def until_ready(process: anyio.abc.Process) -> None:
    assert process.stdout is not None
    said = b""
    while READY not in said:
        said += await process.stdout.receive()


async def measure(kind: str, count: int) -> None:
    output_fd = os.dup(1)
    forks = ForkServer(ROOT, output_fd) if kind == "forked" else None
    taken: list[anyio.abc.Process] = []
    rows = []
    async with anyio.create_task_group() as group:
        if forks is not None:
            started = time.monotonic()
            await group.start(lambda task_status: forks.run(nice=0, task_status=task_status))
            assert await forks.wait_ready(), "the template cannot fork here"
            template = forks.process
            assert template is not None
            print(
                f"template: ready in {time.monotonic() - started:.2f} s,"
                f" {cpu_s(template.pid):.2f} CPU-s, RSS/PSS %.0f / %.0f MiB"
                % memory_mib(template.pid)
            )
        for _ in range(count):
            asked = time.monotonic()
            if forks is not None:
                process = await forks.fork(nice=0)
                assert process is not None
            else:
                command = ["-m", "deployments.spare", "--output-fd", str(output_fd)]
                process = await anyio.open_process(
                    [sys.executable, *command, "--nice", "0"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    cwd=ROOT,
                    pass_fds=(output_fd,),
                )
            exists = time.monotonic() - asked
            await until_ready(process)
            ready = time.monotonic() - asked
            cpu = cpu_s(process.pid) + sum(cpu_s(c) for c in children(process.pid))
            rows.append((exists, ready, cpu))
            taken.append(process)
        await anyio.sleep(2)  # parse children finish their own warm-up
        rss = pss = 0.0
        for process in taken:
            for pid in (process.pid, *children(process.pid)):
                r, p = memory_mib(pid)
                rss, pss = rss + r, pss + p
        print(
            f"{kind:>11}: {count} spares, each: process in"
            f" {statistics.median(r[0] for r in rows) * 1000:.1f} ms, ready in"
            f" {statistics.median(r[1] for r in rows):.2f} s,"
            f" {statistics.median(r[2] for r in rows):.2f} CPU-s (medians);"
            f" all with their parse children: RSS {rss:.0f} MiB, PSS {pss:.0f} MiB"
        )
        for process in taken:
            assert process.stdin is not None
            await process.stdin.aclose()
            await process.wait()
        if forks is not None:
            await forks.stop()
        group.cancel_scope.cancel()
    os.close(output_fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spares", type=int, default=5)
    args = parser.parse_args()
    for kind in ("interpreter", "forked"):
        anyio.run(measure, kind, args.spares)


if __name__ == "__main__":
    main()
