"""Fakes and builders for the API tests: a recording trigger, jobs and row errors in the DB."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from db.models import ImportJob, JobSource, JobStatus, OnError, RowError
from db.repository import get_job
from db.session import session_scope
from orchestration.trigger import Readiness, TriggerUnavailable

UNAVAILABLE = "the Prefect API is not reachable yet (ConnectError)"


@dataclass
class FakeTrigger:
    """Records every call and answers as Prefect would: one run per idempotency key."""

    started: list[tuple[uuid.UUID, str, uuid.UUID]] = field(default_factory=list)
    keys: dict[str, uuid.UUID] = field(default_factory=dict)
    cancelled: list[uuid.UUID] = field(default_factory=list)
    resumed: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    # What `resume_review` answers: a suspended run is "resumed" (Prefect: the run starts
    # again), "busy" (already on its way) or "ended".
    resume_answer: str = "resumed"
    # Jobs whose run was asked of the undo deployment.
    undos: list[uuid.UUID] = field(default_factory=list)
    is_healthy: bool = True
    # Set on each start, for tests whose dispatcher runs in the app's own task.
    a_run_started: threading.Event = field(default_factory=threading.Event)

    async def start_import(
        self, job_id: uuid.UUID, *, filename: str, key: str | None = None, undo: bool = False
    ) -> uuid.UUID:
        run = self.keys.setdefault(key or str(job_id), uuid.uuid4())
        self.started.append((job_id, filename, run))
        if undo:
            self.undos.append(job_id)
        self.a_run_started.set()
        return run

    async def cancel(self, flow_run_id: uuid.UUID) -> None:
        self.cancelled.append(flow_run_id)

    async def resume_review(self, flow_run_id: uuid.UUID, answer: dict[str, Any]) -> str:
        self.resumed.append((flow_run_id, answer))
        return self.resume_answer

    async def readiness(self) -> Readiness:
        if not self.is_healthy:
            return Readiness(prefect=False)
        return Readiness(prefect=True, deployment=True, workers=1)


class UnavailableTrigger:
    """A Prefect that cannot be reached."""

    async def start_import(
        self, job_id: uuid.UUID, *, filename: str, key: str | None = None, undo: bool = False
    ) -> uuid.UUID:
        raise TriggerUnavailable(UNAVAILABLE)

    async def cancel(self, flow_run_id: uuid.UUID) -> None:
        raise TriggerUnavailable(UNAVAILABLE)

    async def resume_review(self, flow_run_id: uuid.UUID, answer: dict[str, Any]) -> str:
        raise TriggerUnavailable(UNAVAILABLE)

    async def readiness(self) -> Readiness:
        return Readiness(prefect=False)


def add_job(**fields: Any) -> uuid.UUID:
    """Insert a job directly; `fields` override plain defaults."""
    values: dict[str, Any] = {
        "status": JobStatus.PENDING,
        "source": JobSource.UPLOAD,
        "filename": "items.xlsx",
        "file_sha256": "ab" * 32,
        "file_size": 1234,
        "file_uri": "memory://files/ab",
        "on_error": OnError.SKIP,
        "dry_run": False,
        "batch_size": 100,
        "warnings": [],
        "columns": [],
    }
    values.update(fields)
    with session_scope() as session:
        job = ImportJob(**values)
        session.add(job)
        session.flush()
        return job.id


def update_job(job_id: uuid.UUID, **fields: Any) -> None:
    """Change a job as a flow run would, in its own transaction."""
    with session_scope() as session:
        job = get_job(session, job_id)
        assert job is not None
        for name, value in fields.items():
            setattr(job, name, value)


def read_job(job_id: uuid.UUID) -> ImportJob:
    """The job as stored now (detached, every column loaded)."""
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        return job


def all_jobs() -> list[ImportJob]:
    """Every job in the database."""
    with session_scope(write=False) as session:
        return list(session.query(ImportJob).all())


def add_row_errors(
    job_id: uuid.UUID, records: list[tuple[int, str | None, str | None, str]]
) -> None:
    """Insert row errors (row, column, value, message) for a job."""
    with session_scope() as session:
        session.add_all(
            RowError(job_id=job_id, row=row, column=column, value=value, message=message)
            for row, column, value, message in records
        )


def stored_files(data_dir: Path) -> list[Path]:
    """Every file in the upload storage of a data dir."""
    root = data_dir / "files"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def at(seconds: float) -> datetime:
    """A fixed UTC moment, `seconds` after a reference time."""
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """`app` behind a real uvicorn server on a free port, in a thread; yields its URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
