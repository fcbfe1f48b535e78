"""The worker's side of the fork server (`deployments.forkserver`): spares in milliseconds.

`ForkServer` starts the template process and asks it for spares; each comes back as a
`ForkedSpare`, an `anyio.abc.Process` like the one `anyio.open_process` returns for a spare
started as an interpreter of its own, so the pool, the hand-over of a run and Prefect's
process handle treat both alike: the spare's socket is its stdin and stdout, its pid is
its own, signals go to it directly, and its exit code comes from the template, its parent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import anyio
import anyio.abc
from anyio.abc import ByteReceiveStream, ByteSendStream, SocketStream
from prefect.logging import get_logger

logger = get_logger("importer.worker")

TEMPLATE_START_TIMEOUT_S = 120.0
# A request the template does not answer in this time means it is stuck: spares are then
# started as interpreters (the caller's fallback).
FORK_TIMEOUT_S = 10.0


class _Input(ByteSendStream):
    """The spare's stdin: the worker's end of its socket, writing."""

    def __init__(self, stream: SocketStream) -> None:
        self._stream = stream

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    async def aclose(self) -> None:
        # End of input, as closing a pipe would; the socket stays open for reading.
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await self._stream.send_eof()


class _Output(ByteReceiveStream):
    """The spare's stdout until it is ready: the worker's end of its socket, reading."""

    def __init__(self, stream: SocketStream) -> None:
        self._stream = stream

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._stream.receive(max_bytes)

    async def aclose(self) -> None:
        """Nothing to close: the socket is also the spare's input, closed when it ends."""


class ForkedSpare(anyio.abc.Process):
    """A spare forked by the template: a process of its own that is not our child."""

    def __init__(self, pid: int, stream: SocketStream) -> None:
        self._pid = pid
        self._stream = stream
        self._stdin = _Input(stream)
        self._stdout = _Output(stream)
        self._returncode: int | None = None
        self._ended = anyio.Event()

    def ended(self, code: int) -> None:
        """The template saw this process end with `code` (negative: the signal)."""
        if self._returncode is None:
            self._returncode = code
            self._ended.set()

    async def wait(self) -> int:
        await self._ended.wait()
        with suppress(Exception):
            await self._stream.aclose()
        assert self._returncode is not None
        return self._returncode

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, sig: int) -> None:
        if self._returncode is None:
            with suppress(ProcessLookupError):
                os.kill(self._pid, sig)

    async def aclose(self) -> None:
        await self._stdin.aclose()
        await self.wait()

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def stdin(self) -> ByteSendStream:
        return self._stdin

    @property
    def stdout(self) -> ByteReceiveStream:
        return self._stdout

    @property
    def stderr(self) -> None:
        return None


class ForkServer:
    """The template process, and the spares it forked that have not ended yet."""

    def __init__(self, cwd: Path, output_fd: int) -> None:
        self.cwd = cwd
        self.output_fd = output_fd
        self.process: anyio.abc.Process | None = None
        self.usable = False  # ready, fit to fork, and not ended
        self._control: socket.socket | None = None
        self._ready = anyio.Event()
        self._spares: dict[int, ForkedSpare] = {}
        self._waiting: list[anyio.abc.ObjectSendStream[ForkedSpare]] = []
        self._lock = anyio.Lock()

    async def run(self, *, nice: int, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Start the template and serve its messages until it ends (in the caller's task
        group: `task_status` is set once it is started, not yet ready)."""
        ours, theirs = socket.socketpair()
        try:
            self.process = await anyio.open_process(
                [
                    sys.executable,
                    "-m",
                    "deployments.forkserver",
                    "--socket-fd",
                    str(theirs.fileno()),
                    "--output-fd",
                    str(self.output_fd),
                    "--nice",
                    str(nice),
                ],
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=None,
                cwd=self.cwd,
                pass_fds=(theirs.fileno(), self.output_fd),
            )
        except OSError:
            logger.exception("could not start the fork server; spares start as interpreters")
            self._ready.set()
            task_status.started()
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self._control = ours
        started = time.monotonic()
        task_status.started()
        try:
            await self._serve(ours, started)
        finally:
            self.usable = False
            self._ready.set()
            ours.close()
            self._control = None
            self._lost()

    async def _serve(self, control: socket.socket, started: float) -> None:
        pending = b""
        sockets: list[int] = []  # received with `spare` lines, in their order
        while True:
            await anyio.wait_readable(control)
            try:
                data, fds, _, _ = socket.recv_fds(control, 4096, 4)
            except BlockingIOError:
                continue
            if not data:
                return
            sockets += fds
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                word, _, rest = line.decode().partition(" ")
                if word == "ready":
                    self.usable = True
                    self._ready.set()
                    logger.debug("fork server ready in %.2f s", time.monotonic() - started)
                elif word == "unfit":
                    logger.warning("no fork server (%s); spares start as interpreters", rest)
                    self._ready.set()
                    return
                elif word == "spare":
                    await self._forked(int(rest), sockets.pop(0))
                elif word == "exit":
                    pid, code = (int(x) for x in rest.split())
                    if (spare := self._spares.pop(pid, None)) is not None:
                        spare.ended(code)

    async def _forked(self, pid: int, fd: int) -> None:
        spare = ForkedSpare(pid, await SocketStream.from_socket(socket.socket(fileno=fd)))
        self._spares[pid] = spare
        if self._waiting:
            waiting = self._waiting.pop(0)
            try:
                async with waiting:
                    await waiting.send(spare)
                return
            except anyio.BrokenResourceError:
                pass
        # Asked for by a request that gave up waiting: it ends with its input.
        await spare.stdin.aclose()

    def _lost(self) -> None:
        """The template ended: its spares' ends can no longer be told. Those still running
        are stopped (a run among them is reported crashed and resumed, as after a kill)."""
        for pid, spare in list(self._spares.items()):
            logger.warning("the fork server ended; stopping its spare %s", pid)
            spare.kill()
            spare.ended(-signal.SIGKILL)
        self._spares.clear()

    async def wait_ready(self) -> bool:
        """Wait until the template is ready or has said it cannot fork; True if it can."""
        with anyio.move_on_after(TEMPLATE_START_TIMEOUT_S):
            await self._ready.wait()
        return self.usable

    async def fork(self, nice: int) -> ForkedSpare | None:
        """A new spare whose remaining imports run at `nice`; None if the template cannot
        give one (not ready, unfit, ended, or stuck)."""
        if not self.usable or self._control is None:
            return None
        send, receive = anyio.create_memory_object_stream[ForkedSpare](1)
        async with self._lock:
            self._waiting.append(send)
            try:
                await anyio.wait_writable(self._control)
                self._control.send(f"spare {nice}\n".encode())
            except OSError:
                self._waiting.remove(send)
                return None
        with anyio.move_on_after(FORK_TIMEOUT_S):
            async with receive:
                return await receive.receive()
        logger.warning("the fork server did not fork in %.0f s", FORK_TIMEOUT_S)
        with suppress(ValueError):
            self._waiting.remove(send)
        return None

    async def stop(self) -> None:
        """End the template (unused spares end with their input; see the module doc)."""
        self.usable = False
        if self._control is not None:
            with suppress(OSError):
                self._control.shutdown(socket.SHUT_WR)
        if self.process is None:
            return
        with anyio.move_on_after(5):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
