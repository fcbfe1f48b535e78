"""Decide a file's format from its bytes, and refuse packages that are encrypted or too big."""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass
from enum import StrEnum

from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.sizes import human_size
from itemsheet.sheet.text import decide_encoding

OLE2_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
ACCEPTED = ".xlsx, .xlsm, .xlsb, .xls, .ods or delimited text (.csv, .txt, .tsv)"
UNSUPPORTED = f"this file is not a spreadsheet we can read; accepted formats: {ACCEPTED}"
PASSWORD_PROTECTED = "workbook is password-protected"  # noqa: S105  (a message, not a secret)
SNIFF_BYTES = 64 * 1024
# Entries bigger than this are checked for an implausible compression ratio.
RATIO_CHECK_MIN_BYTES = 8 * 1024 * 1024


class FileFormat(StrEnum):
    """The formats an import accepts."""

    XLSX = "xlsx"
    XLSM = "xlsm"
    XLSB = "xlsb"
    XLS = "xls"
    ODS = "ods"
    CSV = "csv"


class Container(StrEnum):
    """What the first bytes say a file is, before looking inside."""

    ZIP = "zip"
    OLE2 = "ole2"
    TEXT = "text"


@dataclass(frozen=True)
class PackageLimits:
    """Bounds on what a zip package may hold and expand to."""

    max_uncompressed_bytes: int
    max_compression_ratio: int
    max_entries: int
    max_cells: int


def sniff_container(head: bytes, encoding: str | None = None) -> Container | None:
    """Classify the first bytes of a file; None when it cannot be a spreadsheet or text.

    `encoding` is the one a person named for a text file, if any.
    """
    if head.startswith(ZIP_MAGICS):
        return Container.ZIP
    if head.startswith(OLE2_MAGIC):
        return Container.OLE2
    if _looks_like_text(head[:SNIFF_BYTES], encoding):
        return Container.TEXT
    return None


# Past this share of control characters (other than tab, line breaks, form feed and the
# DOS end-of-file mark) decoded bytes are binary data, whatever encoding reads them.
_CONTROL_SHARE = 0.05
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x19\x1b-\x1f\x7f]")


def _looks_like_text(sample: bytes, encoding: str | None) -> bool:
    """The sample decodes, with no NUL and few controls: in the encoding a person named
    or, failing that, in the one the bytes show (a file saved in another encoding than
    named is text all the same: its import fails naming the byte that does not decode)."""
    if not sample:
        return False
    return any(_decodes_as_text(sample, e) for e in dict.fromkeys((encoding, None)))


def _decodes_as_text(sample: bytes, encoding: str | None) -> bool:
    try:
        chosen = decide_encoding(sample, encoding)
    except ValueError:
        return False
    decoder = codecs.getincrementaldecoder(chosen.codec)()
    try:
        # Not final: the sample may end inside a multi-byte character.
        text = decoder.decode(sample[chosen.bom :], final=False)
    except UnicodeDecodeError:
        return False
    if not text or "\x00" in text:
        return False
    return len(_CONTROLS.findall(text)) <= _CONTROL_SHARE * len(text)


def detect_format(
    data: bytes, *, filename: str | None = None, encoding: str | None = None
) -> FileFormat:
    """The format of a whole file, from its bytes; the file name only tells xlsx from xlsm.
    A text file is `CSV` whatever its delimiter."""
    container = sniff_container(data[:SNIFF_BYTES], encoding)
    if container is Container.ZIP:
        return _zip_format(data, filename)
    if container is Container.OLE2:
        return _ole2_format(data)
    if container is Container.TEXT:
        return FileFormat.CSV
    raise SheetError(UNSUPPORTED)


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise SheetError(
            "the file is corrupt or truncated: its zip package cannot be opened"
        ) from exc


def _zip_format(data: bytes, filename: str | None) -> FileFormat:
    with _open_zip(data) as package:
        names = set(package.namelist())
        if "xl/workbook.bin" in names:
            return FileFormat.XLSB
        if "xl/workbook.xml" in names or any(n.endswith("workbook.xml") for n in names):
            macro = (filename or "").lower().endswith(".xlsm") or "xl/vbaProject.bin" in names
            return FileFormat.XLSM if macro else FileFormat.XLSX
        if "mimetype" in names or "content.xml" in names:
            if "META-INF/manifest.xml" in names and b"encryption-data" in _read_capped(
                package, "META-INF/manifest.xml", 1024 * 1024
            ):
                raise SheetError(PASSWORD_PROTECTED)
            mimetype = _read_capped(package, "mimetype", 256) if "mimetype" in names else b""
            if mimetype.strip() == ODS_MIMETYPE or ("content.xml" in names and not mimetype):
                return FileFormat.ODS
    raise SheetError(UNSUPPORTED)


def _read_capped(package: zipfile.ZipFile, name: str, cap: int) -> bytes:
    try:
        with package.open(name) as member:
            return member.read(cap)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise SheetError(f"the file is corrupt: part '{name}' cannot be read") from exc


def _ole2_format(data: bytes) -> FileFormat:
    # OLE2 directory entry names are UTF-16LE; an encrypted OOXML workbook is an OLE2 file
    # holding these two streams instead of a zip package.
    if (
        "EncryptedPackage".encode("utf-16-le") in data
        or "EncryptionInfo".encode("utf-16-le") in data
    ):
        raise SheetError(PASSWORD_PROTECTED)
    # Anything else in an OLE2 container is handed to the reader as .xls; one that is not
    # a workbook fails there with a clear reason.
    return FileFormat.XLS


_UNIQUE_COUNT = re.compile(rb'uniqueCount="(\d+)"')


def _declaration_pattern() -> re.Pattern[bytes]:
    """`<!DOCTYPE` or `<!ENTITY`, any case, as UTF-8/ASCII, UTF-16 LE or UTF-16 BE bytes."""

    def spelled(word: str, encoding: str) -> bytes:
        return b"".join(
            b"(?:"
            + re.escape(c.upper().encode(encoding))
            + b"|"
            + re.escape(c.lower().encode(encoding))
            + b")"
            if c.isalpha()
            else re.escape(c.encode(encoding))
            for c in word
        )

    words = ("<!DOCTYPE", "<!ENTITY")
    return re.compile(
        b"|".join(spelled(w, e) for w in words for e in ("ascii", "utf-16-le", "utf-16-be"))
    )


# Searched in every part's whole stream: an XML declaration may come after a long comment,
# and a part may be UTF-16.
_DOCTYPE = _declaration_pattern()
_DOCTYPE_SEAM = 2 * len("<!DOCTYPE")
# Every spelling `_DOCTYPE` matches holds one of these: `<!` in ASCII, and `<\0!` in both
# UTF-16 byte orders (`<\0!\0` and `\0<\0!`).
_DECLARATION_STARTS = (b"<!", b"<\x00!")


def _declares(seam: bytes, chunk: bytes) -> bool:
    """Whether `seam + chunk` declares a DOCTYPE or an entity.

    A plain search for where a declaration would start runs at memory speed; the pattern,
    whose letters may each be of either case, runs several times slower and is needed only
    where one of them is found (a comment or CDATA, in a spreadsheet's XML): searching a
    1M-row sheet's parts took 3.7 s with the pattern alone, 0.6 s this way.
    """
    joint = seam + chunk[:_DOCTYPE_SEAM]
    # Every start holds "!", which a sheet's XML seldom has: a search for one byte runs
    # about ten times as fast as one for two, and most chunks need no other.
    if b"!" not in chunk and b"!" not in joint:
        return False
    if not any(start in chunk or start in joint for start in _DECLARATION_STARTS):
        return False
    return _DOCTYPE.search(seam + chunk) is not None


@dataclass(frozen=True)
class PackageReport:
    """What the check of a package learnt on the way."""

    # False when no worksheet can hold a cell with an error value (`t="e"`), so the
    # reader may skip collecting them, which costs about a third of a read.
    may_hold_error_cells: bool


# An attribute whose value is exactly "e": in a worksheet that is a cell's t="e".
_ERROR_CELL_MARKS = (b'"e"', b"'e'")


def _marks_error_cell(tail: bytes, chunk: bytes) -> bool:
    """Whether `tail + chunk` holds an error cell's mark (`tail`: the last two bytes of
    the chunk before, so a mark cut in two by the boundary is found).

    A mark holds an "e" between two quotes. Each is looked for alone first, by a search for
    one byte (about ten times as fast as one for three): a sheet of shared strings and
    numbers seldom holds the letter at all, and single quotes are rarer still."""
    joint = tail + chunk[:2]  # four bytes: searched as they are
    if any(mark in joint for mark in _ERROR_CELL_MARKS):
        return True
    if b"e" not in chunk:
        return False
    return any(mark[:1] in chunk and mark in chunk for mark in _ERROR_CELL_MARKS)


def check_package(data: bytes, limits: PackageLimits) -> PackageReport:
    """Refuse a zip package whose size, ratio, part count or string table is beyond `limits`.

    Declared sizes are checked first (cheap); then every XML part is really decompressed
    with a running total, so a package that lies about its sizes is caught too.
    """
    check_declared(data, limits)
    return check_parts(data, limits)


def check_declared(data: bytes, limits: PackageLimits) -> None:
    """The cheap half of `check_package`: what the package's directory says (part count,
    encryption, declared sizes and ratios), without unpacking anything."""
    with _open_zip(data) as package:
        infos = package.infolist()
        if len(infos) > limits.max_entries:
            raise SheetError(
                f"the package holds {len(infos):,} parts; the limit is {limits.max_entries:,}"
            )
        if any(info.flag_bits & 0x1 for info in infos):
            raise SheetError(PASSWORD_PROTECTED)
        declared = sum(info.file_size for info in infos)
        if declared > limits.max_uncompressed_bytes:
            raise SheetError(_too_big(declared, limits))
        for info in infos:
            if (
                info.file_size > RATIO_CHECK_MIN_BYTES
                and info.file_size > limits.max_compression_ratio * max(info.compress_size, 1)
            ):
                ratio = info.file_size // max(info.compress_size, 1)
                raise SheetError(
                    f"part '{info.filename}' expands {ratio:,} times when unpacked;"
                    " this looks like a zip bomb"
                )


def check_parts(data: bytes, limits: PackageLimits) -> PackageReport:
    """The thorough half of `check_package`: every part really unpacked, within the size
    limit whatever the directory declares, and searched for declarations."""
    with _open_zip(data) as package:
        infos = package.infolist()
        real = 0
        # A package without the usual worksheet parts is not searched: assume the worst.
        error_cells = not any(_is_worksheet(info.filename) for info in infos)
        # The string table's head first, then the smaller parts: the sheet may be parsed
        # meanwhile (`itemsheet.sheet.checked`), and these are what a parser reads first.
        for info in sorted(infos, key=_string_table_then_smaller):
            size, marked = _inspect_member(
                package, info, limits, budget=limits.max_uncompressed_bytes - real
            )
            real += size
            error_cells = error_cells or marked
    return PackageReport(may_hold_error_cells=error_cells)


def _string_table_then_smaller(info: zipfile.ZipInfo) -> tuple[bool, int]:
    return (not info.filename.lower().endswith("sharedstrings.xml"), info.file_size)


def _is_worksheet(name: str) -> bool:
    return name.startswith("xl/worksheets/") and name.endswith(".xml") and name.count("/") == 2


def _too_big(size: int | None, limits: PackageLimits) -> str:
    limit = human_size(limits.max_uncompressed_bytes)
    if size is None:
        return f"the file expands to more than the limit of {limit} when unpacked"
    return f"the file expands to {human_size(size)} when unpacked; the limit is {limit}"


def _inspect_member(
    package: zipfile.ZipFile, info: zipfile.ZipInfo, limits: PackageLimits, *, budget: int
) -> tuple[int, bool]:
    """Decompress one part within `budget` bytes, refusing DOCTYPE or entity declarations
    anywhere in it and checking the head of XML parts.

    Returns the part's size and whether it is a worksheet that may hold error cells.
    """
    size = 0
    head = b""
    worksheet = _is_worksheet(info.filename)
    marked = False
    tail = b""
    seam = b""
    try:
        with package.open(info) as member:
            while chunk := member.read(1024 * 1024):
                if _declares(seam, chunk):
                    raise SheetError(
                        f"part '{info.filename}' declares a DOCTYPE or entities,"
                        " which are not allowed"
                    )
                seam = chunk[-_DOCTYPE_SEAM:]
                if len(head) < 4096:
                    head += chunk[: 4096 - len(head)]
                if worksheet and not marked:
                    marked = _marks_error_cell(tail, chunk)
                    tail = chunk[-2:]
                size += len(chunk)
                if size > budget:
                    raise SheetError(_too_big(None, limits))
    except SheetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise SheetError(f"the file is corrupt: part '{info.filename}' cannot be unpacked") from exc
    if info.filename.endswith((".xml", ".rels")):
        _check_xml_head(info.filename, head, limits)
    return size, marked


def _check_xml_head(name: str, head: bytes, limits: PackageLimits) -> None:
    match = _UNIQUE_COUNT.search(head) if name.endswith("sharedStrings.xml") else None
    if match and int(match.group(1)) > limits.max_cells:
        raise SheetError(
            f"the workbook declares {int(match.group(1)):,} shared strings;"
            f" the limit is {limits.max_cells:,} cells"
        )
