"""The template a worker forks its spares from: `python -m deployments.forkserver`.

A spare started as a new interpreter (`python -m deployments.spare`) spends 2-3 CPU-seconds
importing Prefect, SQLAlchemy, polars and the flows before it can take a run. This process
does the larger part of that once per worker: it imports Prefect's engine, SQLAlchemy and
the importer's models and settings, starts no thread, and then forks a spare whenever the
worker asks for one. The fork shares those modules with the template, imports the rest
(polars, fastexcel, the flows: libraries that start threads of their own at import, so never
before a fork) and from there is exactly a spare (`deployments.spare.serve`): it starts its
parse child, says ready, carries out one run in its own process, and exits.

The worker talks with the template over one Unix socket (`--socket-fd`), a line each way:

- worker -> template `spare <nice>`: fork a spare whose remaining imports run at `nice`;
- template -> worker `spare <pid>`, carrying (SCM_RIGHTS) the spare's own socket, which is
  the spare's stdin and, until it is ready, its stdout: the pipes a spare started as a
  process has;
- template -> worker `exit <pid> <code>` when a spare ends (`code` as `Popen.returncode`:
  negative for a signal), since only the template can wait for its children;
- template -> worker `ready` once the imports are done, or `unfit <reason>` if they started
  a thread (a fork would copy a lock that thread holds): the worker then starts spares as
  interpreters of their own.

The end of the worker's socket (the worker stopped or died) ends the template; spares not
given a run see the end of their own input and exit too.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from itemsheet.sandbox.warm import WARM_NICE, Warming

# What every run needs and starts no thread when imported (checked before any fork).
TEMPLATE_MODULES = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.flows",
    "sqlalchemy",
    "sqlalchemy.orm",
    "settings",
    "db.models",
    "db.session",
)


def thread_count() -> int:
    """The OS threads of this process (Python's own list misses those libraries start)."""
    try:
        return sum(1 for _ in Path("/proc/self/task").iterdir())
    except OSError:
        return threading.active_count()


def single_threaded(grace_s: float = 1.0) -> int:
    """The OS threads once the import thread has gone (it may linger a moment after its
    Python side finished); more than 1 means an import started a thread of its own."""
    deadline = time.monotonic() + grace_s
    while (count := thread_count()) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


class Template:
    """The fork loop: reads the worker's requests, forks spares, reports their ends."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.pending = b""
        # SIGCHLD wakes the loop through this pipe, so an ended spare is told at once.
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)

    def tell(self, line: str, fds: list[int] | None = None) -> None:
        data = line.encode() + b"\n"
        if fds:
            socket.send_fds(self.control, [data], fds)
        else:
            self.control.sendall(data)

    def serve(self) -> int | None:
        """Fork on request until the worker's socket ends (None, in the template) or this
        process is a newly forked spare (the nice value for its remaining imports)."""
        while True:
            readable, _, _ = select.select([self.control.fileno(), self.wake_r], [], [])
            if self.wake_r in readable:
                os.read(self.wake_r, 512)
            self.reap()
            if self.control.fileno() not in readable:
                continue
            data = self.control.recv(4096)
            if not data:
                return None
            self.pending += data
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                word, _, rest = line.decode().partition(" ")
                if word != "spare":
                    continue
                nice = int(rest or "0")
                if self.fork_spare():
                    return nice

    def fork_spare(self) -> bool:
        """Fork one spare; True in the spare, False in the template."""
        theirs, mine = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (self.wake_r, self.wake_w):
                os.close(fd)
            self.control.close()
            theirs.close()
            # The spare's socket is its stdin and stdout, as the pipes of a started spare.
            os.dup2(mine.fileno(), 0)
            os.dup2(mine.fileno(), 1)
            mine.close()
            return True
        mine.close()
        try:
            self.tell(f"spare {pid}", [theirs.fileno()])
        finally:
            theirs.close()
        return False

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.tell(f"exit {pid} {os.waitstatus_to_exitcode(status)}")


def main() -> int:
    """Import, say whether forking is safe, then fork spares on request."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket-fd", type=int, required=True)
    parser.add_argument("--output-fd", type=int, required=True)
    parser.add_argument("--nice", type=int, default=WARM_NICE, help="the imports' priority")
    args = parser.parse_args()
    control = socket.socket(fileno=args.socket_fd)
    # Imported in a thread of `nice` (once done, it has ended: no thread is left to fork
    # with); a request meanwhile hurries it.
    Warming(TEMPLATE_MODULES, nice=args.nice).until_done_or_readable(control)
    if (threads := single_threaded()) > 1:
        control.sendall(f"unfit the imports started {threads - 1} thread(s)\n".encode())
        return 0
    template = Template(control)
    template.tell("ready")
    nice = template.serve()
    if nice is None:
        return 0
    # A newly forked spare: carry on as one started with `python -m deployments.spare`.
    from deployments.spare import serve

    return serve(nice=nice, output_fd=args.output_fd)


if __name__ == "__main__":
    sys.exit(main())
