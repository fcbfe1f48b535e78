"""A rich progress bar fed by the job row, for imports run from the command line."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from db.repository import get_job
from db.session import session_scope

POLL_S = 0.2


def follow_job(
    job_id: uuid.UUID, done: threading.Event, console: Console, *, quiet: bool = False
) -> None:
    """Show the job's committed progress until `done` is set."""
    if quiet:
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("reading", total=None, counts="")
        while True:
            finished = done.wait(POLL_S)
            with session_scope(write=False) as session:
                job = get_job(session, job_id)
                if job is None:
                    return
                counts = (
                    f"+{job.created:,} ~{job.updated:,} ={job.unchanged:,} !{job.failed:,}"
                    if job.total_rows is not None
                    else ""
                )
                label = str(job.status) if job.total_rows is not None else "reading"
                progress.update(
                    bar,
                    description=label,
                    total=job.total_rows,
                    completed=job.processed_rows,
                    counts=counts,
                )
            if finished:
                return


def run_followed(
    job_id: uuid.UUID, run: Callable[[], object], console: Console, *, quiet: bool = False
) -> None:
    """Call `run` (a job's flow, in this process) while a bar follows the job."""
    done = threading.Event()
    watcher = threading.Thread(
        target=follow_job, args=(job_id, done, console), kwargs={"quiet": quiet}, daemon=True
    )
    watcher.start()
    try:
        run()
    finally:
        done.set()
        watcher.join()
