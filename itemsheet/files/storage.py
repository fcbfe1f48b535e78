"""Content-addressed file storage on a local path or any fsspec URL (s3://, gcs://, ...)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

import fsspec

from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.sizes import human_size
from settings import PRIVATE_FILE, make_private_dir, private_opener

_CHUNK = 1024 * 1024
# Suffixes of files that are not stored files: a copy being written, one being removed.
PARTIAL = ".partial"
REMOVING = ".removing"


@dataclass(frozen=True)
class StoredFile:
    """Where a file was stored, and what it was."""

    uri: str
    sha256: str
    size: int


class FileTooLarge(SheetError):
    """The file is bigger than the configured limit."""


def too_large_reason(limit: int) -> str:
    """The sentence a user sees for an oversize file."""
    return f"the file is larger than the limit of {human_size(limit)}"


_SHA256 = re.compile(r"[0-9a-f]{64}")


def store_stream(stream: BinaryIO, base_url: str, *, max_bytes: int) -> StoredFile:
    """Copy `stream` into storage under its sha256, refusing it once it passes `max_bytes`."""
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=8 * _CHUNK) as spool:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise FileTooLarge(too_large_reason(max_bytes))
            digest.update(chunk)
            spool.write(chunk)
        sha = digest.hexdigest()
        uri = stored_uri(base_url, sha)
        fs, path = fsspec.core.url_to_fs(uri)
        if not _refresh(fs, path):
            spool.seek(0)
            # A name of its own: the same file uploaded twice at once is written twice,
            # and each writer moves only its own copy into place (same bytes either way).
            partial = f"{path}.{uuid.uuid4().hex}{PARTIAL}"
            with _create(fs, partial) as out:
                shutil.copyfileobj(spool, out, _CHUNK)
            fs.mv(partial, path)
    return StoredFile(uri, sha, size)


def _create(fs: Any, path: str) -> BinaryIO:
    """A new file open for writing, with its folder; on a local disk both are private."""
    if not _is_local(fs):
        fs.makedirs(fs._parent(path), exist_ok=True)
        return cast(BinaryIO, fs.open(path, "wb"))
    make_private_dir(Path(path).parent)
    return open(path, "xb", opener=private_opener)


def stored_uri(base_url: str, sha256: str) -> str:
    """Where the file with this sha256 is kept under `base_url`."""
    return f"{base_url.rstrip('/')}/{sha256[:2]}/{sha256}"


def _is_local(fs: Any) -> bool:
    return (
        getattr(fs, "protocol", None) in ("file", ("file", "local"))
        or fs.__class__.__name__ == "LocalFileSystem"
    )


def _refresh(fs: Any, path: str) -> bool:
    """Mark a file already stored as stored again now; False when there is none.

    The clean-up never removes a stored file touched within its grace period, so the same
    bytes uploaded again while it decides keep their file (see `set_aside`). Object stores
    cannot touch a file; there a file's age is that of its first upload.
    """
    if not _is_local(fs):
        return bool(fs.exists(path))
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _modified(fs: Any, path: str) -> datetime | None:
    """When the file was last written (or refreshed); None when the store cannot say."""
    try:
        stamp = fs.modified(path)
    except (NotImplementedError, KeyError, AttributeError):
        return None
    if not isinstance(stamp, datetime):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def stored_size(uri: str, *, touched_before: datetime) -> int | None:
    """The size of a stored file that has not been touched since `touched_before`;
    None when it is missing or newer."""
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        when = _modified(fs, path)
        size = fs.size(path)
    except FileNotFoundError:
        return None
    if when is not None and when >= touched_before:
        return None
    return int(size) if size is not None else 0


def set_aside(uri: str) -> str | None:
    """Move a stored file out of its place, as the first step of removing it; None when
    it is not there. Until `discard_aside` decides, `put_back` undoes it."""
    fs, path = fsspec.core.url_to_fs(uri)
    aside = f"{path}.{uuid.uuid4().hex}{REMOVING}"
    try:
        fs.mv(path, aside)
    except FileNotFoundError:
        return None
    return str(fs.unstrip_protocol(aside))


def put_back(aside: str, uri: str) -> None:
    """Return a set-aside file to its place (unless the same bytes were stored again)."""
    fs, path = fsspec.core.url_to_fs(uri)
    _, moved = fsspec.core.url_to_fs(aside)
    if fs.exists(path):
        fs.rm(moved)
    else:
        fs.mv(moved, path)


def discard_aside(aside: str, uri: str, *, touched_before: datetime) -> int | None:
    """Remove a set-aside file and return its size, or put it back (None) when an upload
    of the same bytes touched it after `touched_before`: that upload's job will need it.

    The upload touches the file before its job is committed; the clean-up decided before
    that commit. The move aside makes the two orders safe: an upload that touches first is
    seen here, one that comes later finds no file and stores its own copy.
    """
    fs, moved = fsspec.core.url_to_fs(aside)
    when = _modified(fs, moved)
    if when is not None and when >= touched_before:
        put_back(aside, uri)
        return None
    size = fs.size(moved)
    fs.rm(moved)
    return int(size) if size is not None else 0


def unfinished_files(base_url: str, *, older_than: datetime) -> Iterator[tuple[str, int]]:
    """Copies being written or removed (`.partial`, `.removing`) that are older than
    `older_than`: left by a process that stopped half-way. Yields (URL, size)."""
    fs, root = fsspec.core.url_to_fs(base_url)
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return
    for path, info in found.items():
        if not path.endswith((PARTIAL, REMOVING)):
            continue
        when = _modified(fs, path)
        if when is not None and when < older_than:
            yield str(fs.unstrip_protocol(path)), int(info.get("size") or 0)


def remove_file(url: str) -> None:
    """Remove one file from storage (nothing when it is already gone)."""
    fs, path = fsspec.core.url_to_fs(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path)


def store_path(path: Path, base_url: str, *, max_bytes: int) -> StoredFile:
    """Store a local file (the CLI's way in)."""
    try:
        with path.open("rb") as stream:
            return store_stream(stream, base_url, max_bytes=max_bytes)
    except FileNotFoundError as exc:
        raise SheetError(f"the file '{path}' does not exist") from exc
    except IsADirectoryError as exc:
        raise SheetError(f"'{path}' is a folder, not a file") from exc
    except OSError as exc:
        raise SheetError(f"the file '{path}' cannot be read: {exc.strerror or exc}") from exc


def fetch_local(uri: str, work_dir: Path) -> Path:
    """A local path holding the stored file (the file itself when storage is local).

    A remote file is copied once into `work_dir`, under a name derived from its whole URL
    (two stores may hold files of the same name). It is downloaded under a temporary name,
    checked against the digest its stored name is (when it is one), and only then renamed,
    so an interrupted or damaged download is never taken for the file.
    """
    if not uri:
        raise SheetError("the import has no stored file (it was refused before it was stored)")
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        raise SheetError(
            "the stored file of this import is missing from storage; upload the file again"
        )
    if _is_local(fs):
        return Path(path)
    make_private_dir(work_dir)
    local = work_dir / local_copy_name(uri)
    if local.exists():
        return local
    partial = work_dir / f"{local.name}.{uuid.uuid4().hex}{PARTIAL}"
    try:
        fs.get(path, str(partial))
        partial.chmod(PRIVATE_FILE)  # written by fsspec, with the umask's mode
        name = PurePosixPath(path).name
        if _SHA256.fullmatch(name) and _digest(partial) != name:
            raise SheetError("the stored file is damaged (its content does not match its digest)")
        partial.replace(local)
    finally:
        partial.unlink(missing_ok=True)
    return local


def local_copy_name(uri: str) -> str:
    """The name of a remote stored file's local copy: its own name (the content's digest)
    and a digest of its whole URL, as two stores may hold files of the same name."""
    name = PurePosixPath(fsspec.core.url_to_fs(uri)[1]).name[:64]
    return f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:16]}"


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
