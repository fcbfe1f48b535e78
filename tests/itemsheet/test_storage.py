"""Stored files fetched from a remote store: keyed by their whole URL, checked, then named."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import fsspec
import pytest

from itemsheet.errors import SheetError
from itemsheet.storage import fetch_local, store_stream


def test_files_of_the_same_name_in_two_stores_stay_apart(tmp_path: Path) -> None:
    first = store_stream(io.BytesIO(b"SKU\nA\n"), "memory://store-a", max_bytes=100)
    fs = fsspec.filesystem("memory")
    # Another store holding other bytes under the same name.
    other = f"memory://store-b/{first.sha256[:2]}/{first.sha256}"
    fs.makedirs(f"/store-b/{first.sha256[:2]}", exist_ok=True)
    with fs.open(other, "wb") as out:
        out.write(b"SKU\nA\n")  # same bytes: a valid copy of the same content
    work = tmp_path / "work"

    a, b = fetch_local(first.uri, work), fetch_local(other, work)

    assert a != b
    assert a.read_bytes() == b.read_bytes() == b"SKU\nA\n"
    assert not list(work.glob("*.partial"))


def test_a_damaged_remote_copy_is_refused_and_never_kept(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"the real content").hexdigest()
    uri = f"memory://damaged/{digest[:2]}/{digest}"
    fs = fsspec.filesystem("memory")
    fs.makedirs(f"/damaged/{digest[:2]}", exist_ok=True)
    with fs.open(uri, "wb") as out:
        out.write(b"half of the cont")
    work = tmp_path / "work"

    with pytest.raises(SheetError, match="the stored file is damaged"):
        fetch_local(uri, work)

    assert list(work.iterdir()) == []  # neither a partial nor a final copy


def test_a_job_without_a_stored_file_says_so() -> None:
    with pytest.raises(SheetError, match="has no stored file"):
        fetch_local("", Path("/nonexistent"))
