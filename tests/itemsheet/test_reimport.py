"""Where a reimport may read from, and two reimports of one source at the same moment."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import fsspec
import pytest
from sqlalchemy import select

from db.models import ImportJob, ImportMode, JobStatus, OnError
from db.session import session_scope
from itemsheet.runs import reimport
from itemsheet.runs.reimport import plan_reimport, source_allowed
from settings import SettingsError, get_settings
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
        ("file:/data/feeds/items.xlsx", ("file:///data/feeds",), True),
        ("local:///data/feeds/items.xlsx", ("/data/feeds",), True),
        # fsspec reads a file URL's host as a folder under the working directory, and `~`
        # as the home directory: neither is the path the allow-list saw.
        ("file://evil/data/feeds/items.xlsx", ("/data/feeds",), False),
        ("file://~/data/feeds/items.xlsx", ("/data/feeds",), False),
        ("file://localhost/data/feeds/items.xlsx", ("/data/feeds",), False),
        # ... and a query or fragment as part of the file name.
        ("file:///data/feeds/items.xlsx?v=1", ("/data/feeds",), False),
        ("file:///data/feeds/items.xlsx#sheet", ("/data/feeds",), False),
        ("simplecache::file:///data/feeds/items.xlsx", ("/data/feeds",), False),
        ("memory://feeds/a.xlsx", ("memory://feeds",), True),
        ("memory://feeds/a.xlsx", ("/feeds",), False),
        ("memory://feeds/../secret/a.xlsx", ("memory://feeds",), False),
        ("memory://other/../feeds/a.xlsx", ("memory://feeds",), False),
        # Web addresses are not read at all (see `test_web_addresses_are_refused_...`).
        ("https://files.example.com/feeds/a.xlsx", ("https://files.example.com/feeds",), False),
        ("http://169.254.169.254/latest/meta-data", ("https://files.example.com",), False),
    ],
)
def test_source_allowed(source: str, prefixes: tuple[str, ...], allowed: bool) -> None:
    assert source_allowed(source, prefixes) is allowed


def test_a_symbolic_link_out_of_an_allowed_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "feeds").mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "feeds" / "link.xlsx").symlink_to(tmp_path / "secret" / "items.xlsx")
    assert not source_allowed(str(tmp_path / "feeds" / "link.xlsx"), (str(tmp_path / "feeds"),))
    assert source_allowed(str(tmp_path / "feeds" / "own.xlsx"), (f"file://{tmp_path}/feeds",))


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (
            "file://evil{feeds}/items.xlsx",
            "names the host 'evil'; a file URL names no host: write file:///path (three"
            " slashes) or the path alone",
        ),
        (
            "file://~{feeds}/items.xlsx",
            "names the host '~'; a file URL names no host: write file:///path (three"
            " slashes) or the path alone",
        ),
        (
            "file://{feeds}/items.xlsx?v=1",
            "has a query or fragment, which would be read as part of the file name; name the"
            " file by its path alone",
        ),
        (
            "https://files.example.com{feeds}/items.xlsx",
            "is a web address; reimports read paths and fsspec URLs of file systems and object"
            " stores, not web addresses: copy the file to a folder or bucket and name that",
        ),
    ],
)
def test_a_file_url_with_a_host_or_query_fails_and_neither_the_home_nor_the_working_directory_is_read(
    importer_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    reason: str,
) -> None:
    feeds = tmp_path / "feeds"
    # What fsspec would read instead: under the working directory, and under the home one.
    home, work = tmp_path / "home", tmp_path / "work"
    for decoy in (work / "evil", home):
        Path(f"{decoy}{feeds}").mkdir(parents=True)
        write_xlsx(Path(f"{decoy}{feeds}") / "items.xlsx", [["SKU", "Name"], ["A", "a"]])
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("IMPORTER_REIMPORT_ALLOWED", str(feeds))
    get_settings.cache_clear()
    source = source.format(feeds=feeds)

    plan = plan_reimport(source, sheet=None, on_error=OnError.SKIP)

    assert not plan.run_import
    with session_scope(write=False) as session:
        job = session.get(ImportJob, plan.job_id)
        assert job is not None
        assert (job.status, job.file_sha256) == (JobStatus.FAILED, "")  # nothing was fetched
        assert job.error == f"the source '{source}' {reason}"


def test_a_source_in_an_allowed_object_store_folder_is_fetched_from_there(
    importer_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = write_xlsx(tmp_path / "feed.xlsx", [["SKU", "Name"], ["A", "a"]])
    store = fsspec.filesystem("memory")
    store.pipe("/feeds/feed.xlsx", book.read_bytes())
    monkeypatch.setenv("IMPORTER_REIMPORT_ALLOWED", "memory://feeds")
    get_settings.cache_clear()
    try:
        plan = plan_reimport("memory://feeds/feed.xlsx", sheet=None, on_error=OnError.SKIP)
    finally:
        store.rm("/feeds", recursive=True)

    assert plan.run_import
    with session_scope(write=False) as session:
        job = session.get(ImportJob, plan.job_id)
        assert job is not None and job.file_size == book.stat().st_size


def test_a_web_address_as_a_reimport_source_fails_at_once_with_a_sentence(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_REIMPORT_ALLOWED", "https://files.example.com")
    monkeypatch.setenv("IMPORTER_REIMPORT_SOURCE", "https://files.example.com/feed.xlsx")
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as caught:
        get_settings()
    assert str(caught.value) == (
        "IMPORTER_REIMPORT_SOURCE: 'https://files.example.com/feed.xlsx' is a web address;"
        " reimports read paths and fsspec URLs of file systems and object stores, not web"
        " addresses: copy the file to a folder or bucket and name that;"
        " IMPORTER_REIMPORT_ALLOWED: 'https://files.example.com' is a web address;"
        " reimports read paths and fsspec URLs of file systems and object stores, not web"
        " addresses: copy the file to a folder or bucket and name that"
    )


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


def test_a_scheduled_supplier_list_is_reimported_in_the_mode_it_was_scheduled_with(
    importer_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = write_xlsx(tmp_path / "supplier.xlsx", [["SKU", "Price"], ["A", 1]])
    monkeypatch.setenv("IMPORTER_REIMPORT_ALLOWED", str(tmp_path))
    get_settings.cache_clear()

    plan = plan_reimport(str(feed), sheet=None, on_error=OnError.SKIP, mode=ImportMode.UPDATE_ONLY)

    assert plan.run_import
    with session_scope(write=False) as session:
        job = session.get(ImportJob, plan.job_id)
        assert job is not None and job.mode is ImportMode.UPDATE_ONLY


def test_while_a_held_back_reimport_waits_for_a_person_later_rounds_add_no_other(
    importer_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = write_xlsx(tmp_path / "prices.xlsx", [["SKU", "Price"], ["A", 1]])
    monkeypatch.setenv("IMPORTER_REIMPORT_ALLOWED", str(tmp_path))
    get_settings.cache_clear()
    first = plan_reimport(str(feed), sheet=None, on_error=OnError.SKIP)
    with session_scope() as session:
        held = session.get(ImportJob, first.job_id)
        assert held is not None
        # What a tripped guardrail leaves: the job waits, for hours, without a beat.
        held.status = JobStatus.AWAITING_REVIEW
        held.updated_at = held.updated_at - timedelta(hours=5)
    write_xlsx(feed, [["SKU", "Price"], ["A", 2]])  # the supplier's next list

    later = plan_reimport(str(feed), sheet=None, on_error=OnError.SKIP)

    assert not later.run_import
    with session_scope(write=False) as session:
        skipped = session.get(ImportJob, later.job_id)
        assert skipped is not None and skipped.status is JobStatus.CANCELLED
        assert skipped.error == (
            f"skipped: the reimport of this source in job {first.job_id} waits for a review"
        )
