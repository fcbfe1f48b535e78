"""The same upload sent many times at once, to the app served by uvicorn, opens one job."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from db.models import ImportJob
from db.session import session_scope
from tests.api.helpers import serve
from tests.contract.workbooks import write_xlsx

SENDERS = 8


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    """The app behind a real HTTP server on a free port (many requests in flight at once)."""
    with serve(app) as url:
        yield url


def test_the_same_file_posted_at_once_from_many_clients_creates_one_job(
    served: str, tmp_path: Path
) -> None:
    rows = [["SKU", "Name", "Price"]] + [[f"D-{i}", f"Item {i}", i] for i in range(2000)]
    body = write_xlsx(tmp_path / "same.xlsx", rows).read_bytes()
    start = threading.Barrier(SENDERS)
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=served, timeout=60) as client:
            start.wait()
            answers.append(client.post("/api/excel/import", files={"file": ("same.xlsx", body)}))

    senders = [threading.Thread(target=send) for _ in range(SENDERS)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(120)
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * (SENDERS - 1), [a.text for a in answers]
    job_ids = {a.json()["job_id"] for a in answers}
    assert len(job_ids) == 1
    with session_scope(write=False) as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 1
