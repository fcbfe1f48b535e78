"""Where a reimport may read from, and two reimports of one source at the same moment."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import ImportJob, JobStatus, OnError
from db.session import session_scope
from itemsheet import reimport
from itemsheet.reimport import plan_reimport, source_allowed
from settings import get_settings
from tests.contract.workbooks import write_xlsx


@pytest.mark.parametrize(
    ("source", "prefixes", "allowed"),
    [
        ("/data/feeds/items.xlsx", ("/data/feeds",), True),
        ("/data/feeds/sub/items.xlsx", ("/data/feeds/",), True),
        ("/data/feeds/../secret/items.xlsx", ("/data/feeds",), False),
        ("/data/feedsX/items.xlsx", ("/data/feeds",), False),
        ("/etc/passwd", ("/data/feeds",), False),
        ("/data/feeds/items.xlsx", (), False),
        ("file:///data/feeds/items.xlsx", ("/data/feeds",), True),
        ("https://files.example.com/feeds/a.xlsx", ("https://files.example.com/feeds",), True),
        ("https://files.example.com/feeds/../admin", ("https://files.example.com/feeds",), False),
        ("https://files.example.com.evil/feeds/a", ("https://files.example.com/feeds",), False),
        ("http://files.example.com/feeds/a.xlsx", ("https://files.example.com/feeds",), False),
        ("http://169.254.169.254/latest/meta-data", ("https://files.example.com",), False),
        ("s3://bucket/feeds/a.xlsx", ("s3://bucket/feeds",), True),
        ("s3://other/feeds/a.xlsx", ("s3://bucket/feeds",), False),
    ],
)
def test_source_allowed(source: str, prefixes: tuple[str, ...], allowed: bool) -> None:
    assert source_allowed(source, prefixes) is allowed


def test_a_source_outside_the_allowed_locations_fails_with_the_reason_and_is_not_read(
    importer_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").mkdir()
    secret = write_xlsx(tmp_path / "secret" / "items.xlsx", [["SKU", "Name"], ["A", "a"]])
    monkeypatch.setenv("IMPORTER_REIMPORT_ALLOWED", str(tmp_path / "feeds"))
    get_settings.cache_clear()

    plan = plan_reimport(str(secret), sheet=None, on_error=OnError.SKIP)

    assert not plan.run_import
    with session_scope(write=False) as session:
        job = session.get(ImportJob, plan.job_id)
        assert job is not None
        assert job.status is JobStatus.FAILED
        assert job.error is not None and job.error.startswith(
            f"the source '{secret}' is not under a location reimports may read"
        )
        assert job.file_sha256 == ""  # nothing was fetched or stored


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_two_reimports_of_one_source_at_once_start_one_import(
    importer_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_xlsx(tmp_path / "feed.xlsx", [["SKU", "Name"], ["A", "a"]])
    monkeypatch.setenv("IMPORTER_REIMPORT_ALLOWED", str(tmp_path))
    get_settings.cache_clear()
    # Both runs fetch the file, then decide at the same moment.
    both_fetched = threading.Barrier(2)
    fetch = reimport._fetch

    def fetch_then_wait(*args: object, **kwargs: object) -> object:
        stored = fetch(*args, **kwargs)  # type: ignore[arg-type]
        both_fetched.wait(30)
        return stored

    monkeypatch.setattr(reimport, "_fetch", fetch_then_wait)
    plans: list[reimport.Plan] = []

    def run() -> None:
        plans.append(plan_reimport(str(source), sheet=None, on_error=OnError.SKIP))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(p.run_import for p in plans) == [False, True]
    with session_scope(write=False) as session:
        skipped = session.scalars(
            select(ImportJob).where(ImportJob.status == JobStatus.CANCELLED)
        ).one()
    assert skipped.error is not None and "is still running" in skipped.error
