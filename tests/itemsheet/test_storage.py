"""Stored files: removed while the same bytes are uploaded again, and fetched from remote
stores (keyed by their whole URL, checked, then named)."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta
from pathlib import Path

import fsspec
import pytest

from db.models import utcnow
from itemsheet.files.storage import discard_aside, fetch_local, set_aside, store_stream
from itemsheet.sheet.errors import SheetError
from tests.conftest import mode_of
from tests.itemsheet.old_jobs import LONG_AGO, age

GRACE = timedelta(hours=1)


def _store(base: Path, content: bytes) -> str:
    return store_stream(io.BytesIO(content), str(base), max_bytes=1000).uri


def test_an_upload_just_before_the_removal_keeps_the_file_in_place(tmp_path: Path) -> None:
    uri = _store(tmp_path, b"same bytes")
    age(Path(uri), LONG_AGO)
    _store(tmp_path, b"same bytes")  # found, and marked as stored now

    aside = set_aside(uri)
    assert aside is not None

    assert discard_aside(aside, uri, touched_before=utcnow() - GRACE) is None
    assert Path(uri).read_bytes() == b"same bytes"
    assert [p.name for p in Path(uri).parent.iterdir()] == [Path(uri).name]


def test_an_upload_just_after_the_file_was_set_aside_stores_its_own_copy(tmp_path: Path) -> None:
    uri = _store(tmp_path, b"same bytes")
    age(Path(uri), LONG_AGO)
    aside = set_aside(uri)
    assert aside is not None and not Path(uri).exists()

    _store(tmp_path, b"same bytes")

    assert discard_aside(aside, uri, touched_before=utcnow() - GRACE) == len(b"same bytes")
    assert Path(uri).read_bytes() == b"same bytes"
    assert [p.name for p in Path(uri).parent.iterdir()] == [Path(uri).name]


def test_a_missing_stored_file_is_a_one_line_reason_not_a_traceback(tmp_path: Path) -> None:
    uri = _store(tmp_path, b"soon gone")
    Path(uri).unlink()

    with pytest.raises(SheetError, match=r"^the stored file of this import is missing"):
        fetch_local(uri, tmp_path / "work")


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


@pytest.mark.usefixtures("umask_022")
def test_stored_files_and_their_folders_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    stored = Path(_store(data_dir / "files", b"a catalogue"))

    assert mode_of(stored) == 0o600
    for folder in (data_dir, data_dir / "files", stored.parent):
        assert mode_of(folder) == 0o700, folder


@pytest.mark.usefixtures("umask_022")
def test_a_local_copy_of_a_remote_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    content = b"a catalogue"
    uri = f"memory://private/{hashlib.sha256(content).hexdigest()}"
    with fsspec.open(uri, "wb") as remote:
        remote.write(content)
    work_dir = tmp_path / "var" / "work"

    local = fetch_local(uri, work_dir)

    assert mode_of(local) == 0o600
    assert mode_of(work_dir) == mode_of(work_dir.parent) == 0o700
