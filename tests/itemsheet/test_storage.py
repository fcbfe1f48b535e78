"""Removing a stored file while the same bytes are uploaded again, on a real folder."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest

from db.models import utcnow
from itemsheet.errors import SheetError
from itemsheet.storage import discard_aside, fetch_local, set_aside, store_stream
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
