"""A pre-started interpreter that carries out one flow run: `python -m deployments.spare`.

A worker keeps one or more of these ready. Each imports Prefect's engine, the flows and
what they use (polars, fastexcel, SQLAlchemy) ahead of time, in a thread of low priority so
a running import keeps the CPU (`itemsheet.sandbox.warm`), and starts its own spare parse child.
Then it says `ready` on stdout and waits on stdin for one line: the flow run id and the
run's environment. It then runs Prefect's own engine entry point (`python -m
prefect.engine`) in this process, so the run is exactly what a fresh interpreter would do,
minus the imports, and exits: one process per run, as before. End of input (the worker
went away) ends an unused spare.

Most spares are not started this way but forked from the worker's template process
(`deployments.forkserver`), which then calls `serve` with the modules it imported already
there; this entry point is for where forking does not work.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import warnings

from orchestration.names import FLOW_MODULES

# What a run needs, imported before it arrives: also what Prefect's engine and the
# importer's database session import only once a run has begun (a profile of a run found
# them: about 70 ms of imports before its job began).
WARM_MODULES = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.flows",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "encodings.idna",
    "polars",
    "fastexcel",
    *FLOW_MODULES,
)
READY = b"ready\n"


def run_engine(flow_run_id: str, env: dict[str, str]) -> None:
    """Run Prefect's engine entry point for `flow_run_id`, as `python -m prefect.engine` does."""
    os.environ.update(env)
    sys.argv = ["prefect.engine", flow_run_id]
    # The warm-up imported `prefect.engine` as a module (the flows import it); running it
    # again as `__main__` is what `python -m prefect.engine` does too.
    warnings.filterwarnings("ignore", "'prefect.engine' found in sys.modules", RuntimeWarning)
    runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


def main() -> int:
    """Warm up, say ready, carry out the one run handed over (or end when none comes)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output-fd", type=int, required=True)
    parser.add_argument(
        "--nice",
        type=int,
        default=None,
        help="the warm-up's nice value (default: low priority, so running imports go first)",
    )
    args = parser.parse_args()
    return serve(nice=args.nice, output_fd=args.output_fd)


def serve(*, nice: int | None, output_fd: int) -> int:
    """Be a spare: stdin brings the run's order, stdout hears `ready`, and what the run
    prints goes to `output_fd`. Also what a spare forked by `deployments.forkserver` does,
    with the modules it imported before the fork already there."""
    # The parse child is started from this thread, so it keeps normal priority for the
    # parse; it warms itself up at low priority too.
    from itemsheet.sandbox.child import keep_spare_child
    from itemsheet.sandbox.warm import WARM_NICE, Warming

    # A worker with no ready spare hands a run to one still warming up: never slower than
    # a fresh interpreter, which would import the same modules from the start.
    line = Warming(WARM_MODULES, nice=WARM_NICE if nice is None else nice).until_done_or_work(
        sys.stdin
    )
    # The parse child warms up once this process has (one at a time is ready sooner), and
    # is started from this thread, of normal priority, which the parse must have.
    keep_spare_child()
    os.write(1, READY)
    # From here on, what the run prints goes where the worker's own output goes.
    os.dup2(output_fd, 1)
    os.close(output_fd)
    if line is None:
        line = sys.stdin.readline()
    if not line.strip():
        return 0
    order = json.loads(line)
    run_engine(str(order["flow_run_id"]), {str(k): str(v) for k, v in order["env"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
