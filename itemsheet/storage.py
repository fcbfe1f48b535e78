"""Content-addressed file storage on a local path or any fsspec URL (s3://, gcs://, ...)."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import fsspec

from itemsheet.errors import SheetError
from itemsheet.sizes import human_size

_CHUNK = 1024 * 1024


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
        uri = f"{base_url.rstrip('/')}/{sha[:2]}/{sha}"
        fs, path = fsspec.core.url_to_fs(uri)
        if not fs.exists(path):
            fs.makedirs(fs._parent(path), exist_ok=True)
            spool.seek(0)
            # A name of its own: the same file uploaded twice at once is written twice,
            # and each writer moves only its own copy into place (same bytes either way).
            partial = f"{path}.{uuid.uuid4().hex}.partial"
            with fs.open(partial, "wb") as out:
                shutil.copyfileobj(spool, out, _CHUNK)
            fs.mv(partial, path)
    return StoredFile(uri, sha, size)


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
    if (
        getattr(fs, "protocol", None) in ("file", ("file", "local"))
        or fs.__class__.__name__ == "LocalFileSystem"
    ):
        return Path(path)
    work_dir.mkdir(parents=True, exist_ok=True)
    local = work_dir / f"fetched-{hashlib.sha256(uri.encode()).hexdigest()[:32]}"
    if local.exists():
        return local
    partial = local.with_name(f"{local.name}.{uuid.uuid4().hex}.partial")
    try:
        fs.get(path, str(partial))
        name = PurePosixPath(path).name
        if _SHA256.fullmatch(name) and _digest(partial) != name:
            raise SheetError("the stored file is damaged (its content does not match its digest)")
        partial.replace(local)
    finally:
        partial.unlink(missing_ok=True)
    return local


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
