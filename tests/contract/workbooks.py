"""Builders of the files the contract tests import: workbooks, CSV and hostile files.

Every builder writes one file at the path it is given and returns that path. Rows are
lists of cell values as a user sees them in Excel, the first list being row 1; `None`
is an empty cell and an empty list is an empty row.
"""

from __future__ import annotations

import csv
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

Rows = Sequence[Sequence[Any]]

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
XLSM_CONTENT_TYPE = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
ODS_MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"


@dataclass(frozen=True)
class Formula:
    """A formula cell together with the value the workbook cached for it."""

    expr: str
    cached: Any


@dataclass(frozen=True)
class ErrorValue:
    """A spreadsheet error cell such as `#N/A`."""

    code: str


def column_letter(index: int) -> str:
    """The Excel column letters of a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _sheets_of(rows: Rows | None, sheets: Mapping[str, Rows] | None) -> dict[str, Rows]:
    if (rows is None) == (sheets is None):
        raise ValueError("pass either rows or sheets")
    return dict(sheets) if sheets is not None else {"Items": rows or []}


# --- .xlsx with openpyxl ------------------------------------------------------------


def write_xlsx(
    path: Path,
    rows: Rows | None = None,
    *,
    sheets: Mapping[str, Rows] | None = None,
    hidden: Iterable[str] = (),
) -> Path:
    """An .xlsx written by openpyxl; dates and datetimes become Excel date cells."""
    from openpyxl import Workbook

    hidden = set(hidden)
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, sheet_rows in _sheets_of(rows, sheets).items():
        sheet = workbook.create_sheet(name)
        for r, row in enumerate(sheet_rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is None:
                    continue
                cell = sheet.cell(row=r, column=c, value=value)
                if isinstance(value, datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm:ss"
                elif isinstance(value, date):
                    cell.number_format = "yyyy-mm-dd"
        if name in hidden:
            sheet.sheet_state = "hidden"
    # openpyxl refuses to save a workbook whose active sheet is hidden.
    visible = [i for i, s in enumerate(workbook.worksheets) if s.sheet_state == "visible"]
    workbook.active = visible[0] if visible else 0
    workbook.save(path)
    return path


# --- .xlsx / .xlsm written by hand (formulas with cached values, error cells) --------


def _xlsx_cell(ref: str, value: Any, strings: dict[str, int]) -> str:
    if isinstance(value, ErrorValue):
        return f'<c r="{ref}" t="e"><v>{escape(value.code)}</v></c>'
    if isinstance(value, Formula):
        formula = f"<f>{escape(value.expr)}</f>"
        cached = value.cached
        if cached is None:
            return f'<c r="{ref}">{formula}</c>'
        if isinstance(cached, ErrorValue):
            return f'<c r="{ref}" t="e">{formula}<v>{escape(cached.code)}</v></c>'
        if isinstance(cached, str):
            return f'<c r="{ref}" t="str">{formula}<v>{escape(cached)}</v></c>'
        return f'<c r="{ref}">{formula}<v>{cached!r}</v></c>'
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    text = str(value)
    index = strings.setdefault(text, len(strings))
    return f'<c r="{ref}" t="s"><v>{index}</v></c>'


def _sheet_xml(rows: Rows, strings: dict[str, int]) -> str:
    out = []
    for r, row in enumerate(rows, start=1):
        cells = "".join(
            _xlsx_cell(f"{column_letter(c)}{r}", value, strings)
            for c, value in enumerate(row)
            if value is not None
        )
        if cells:
            out.append(f'<row r="{r}">{cells}</row>')
    return _sheet_document("".join(out))


def _sheet_document(sheet_data: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f"<sheetData>{sheet_data}</sheetData></worksheet>"
    )


def _package_parts(
    names: Sequence[str], hidden: set[str], *, main_content_type: str, with_strings: bool
) -> dict[str, str]:
    """Every part of a minimal SpreadsheetML package except the sheets themselves."""
    ns_rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    ns_pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    sheet_ct = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    overrides = [
        f'<Override PartName="/xl/workbook.xml" ContentType="{main_content_type}"/>',
        '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.styles+xml"/>',
    ]
    overrides += [
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{sheet_ct}"/>'
        for i in range(1, len(names) + 1)
    ]
    if with_strings:
        overrides.append(
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/'
        'vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>' + "".join(overrides) + "</Types>"
    )
    root_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="{ns_pkg}">'
        f'<Relationship Id="rId1" Type="{ns_rel}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )
    sheet_elems = "".join(
        f'<sheet name="{escape(name, {chr(34): "&quot;"})}" sheetId="{i}" r:id="rId{i}"'
        + (' state="hidden"' if name in hidden else "")
        + "/>"
        for i, name in enumerate(names, start=1)
    )
    first_visible = next((i for i, n in enumerate(names) if n not in hidden), 0)
    workbook = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'xmlns:r="{ns_rel}">'
        f'<bookViews><workbookView activeTab="{first_visible}"/></bookViews>'
        f"<sheets>{sheet_elems}</sheets></workbook>"
    )
    rels = [
        f'<Relationship Id="rId{i}" Type="{ns_rel}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, len(names) + 1)
    ]
    n = len(names)
    rels.append(f'<Relationship Id="rId{n + 1}" Type="{ns_rel}/styles" Target="styles.xml"/>')
    if with_strings:
        rels.append(
            f'<Relationship Id="rId{n + 2}" Type="{ns_rel}/sharedStrings" '
            'Target="sharedStrings.xml"/>'
        )
    workbook_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="{ns_pkg}">' + "".join(rels) + "</Relationships>"
    )
    styles = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        "</cellStyleXfs>"
        '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        "</cellXfs></styleSheet>"
    )
    return {
        "[Content_Types].xml": content_types,
        "_rels/.rels": root_rels,
        "xl/workbook.xml": workbook,
        "xl/_rels/workbook.xml.rels": workbook_rels,
        "xl/styles.xml": styles,
    }


def _shared_strings_xml(strings: dict[str, int], *, declared: int | None = None) -> str:
    items = "".join(f'<si><t xml:space="preserve">{escape(text)}</t></si>' for text in strings)
    count = len(strings) if declared is None else declared
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'count="{count}" uniqueCount="{count}">{items}</sst>'
    )


def write_raw_xlsx(
    path: Path,
    rows: Rows | None = None,
    *,
    sheets: Mapping[str, Rows] | None = None,
    hidden: Iterable[str] = (),
    macro_enabled: bool = False,
    declared_unique_strings: int | None = None,
    extra_cells: str = "",
) -> Path:
    """An .xlsx (or .xlsm) built by hand, so formula cells carry cached values.

    Cells may be `Formula(expr, cached)` and `ErrorValue("#N/A")` besides plain values.
    For hostile files, `declared_unique_strings` overrides the shared-string counts the
    package claims, and `extra_cells` is raw XML of rows appended to the first sheet.
    """
    sheet_map = _sheets_of(rows, sheets)
    strings: dict[str, int] = {}
    sheet_xml = [_sheet_xml(sheet_rows, strings) for sheet_rows in sheet_map.values()]
    if extra_cells:
        sheet_xml[0] = sheet_xml[0].replace("</sheetData>", extra_cells + "</sheetData>")
    parts = _package_parts(
        list(sheet_map),
        set(hidden),
        main_content_type=XLSM_CONTENT_TYPE if macro_enabled else XLSX_CONTENT_TYPE,
        with_strings=True,
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(name, text)
        for i, text in enumerate(sheet_xml, start=1):
            zf.writestr(f"xl/worksheets/sheet{i}.xml", text)
        zf.writestr(
            "xl/sharedStrings.xml", _shared_strings_xml(strings, declared=declared_unique_strings)
        )
    return path


def write_xlsx_claiming_4e9_shared_strings(path: Path, rows: Rows) -> Path:
    """A tiny .xlsx whose sharedStrings part claims 4,000,000,000 unique strings."""
    return write_raw_xlsx(path, rows, declared_unique_strings=4_000_000_000)


def write_xlsx_with_a_cell_at_xfd1048576(path: Path, rows: Rows) -> Path:
    """A tiny .xlsx with `rows` from A1 and one more cell in the sheet's last cell."""
    far = '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
    return write_raw_xlsx(path, rows, extra_cells=far)


# --- .xls with xlwt -------------------------------------------------------------------


def write_xls(
    path: Path,
    rows: Rows | None = None,
    *,
    sheets: Mapping[str, Rows] | None = None,
) -> Path:
    """A BIFF8 .xls written by xlwt."""
    import xlwt

    book = xlwt.Workbook()
    date_style = xlwt.easyxf(num_format_str="yyyy-mm-dd")
    for name, sheet_rows in _sheets_of(rows, sheets).items():
        sheet = book.add_sheet(name)
        for r, row in enumerate(sheet_rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, date):
                    sheet.write(r, c, value, date_style)
                else:
                    sheet.write(r, c, value)
    book.save(str(path))
    return path


# --- .ods built by hand ---------------------------------------------------------------


def _ods_cell(value: Any) -> str:
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, bool):
        raise TypeError("booleans are not needed by these tests")
    if isinstance(value, datetime):
        stamp = value.isoformat(timespec="seconds")
        return (
            f'<table:table-cell office:value-type="date" office:date-value="{stamp}">'
            f"<text:p>{stamp.replace('T', ' ')}</text:p></table:table-cell>"
        )
    if isinstance(value, date):
        return (
            f'<table:table-cell office:value-type="date" office:date-value="{value.isoformat()}">'
            f"<text:p>{value.isoformat()}</text:p></table:table-cell>"
        )
    if isinstance(value, int | float):
        return (
            f'<table:table-cell office:value-type="float" office:value="{value!r}">'
            f"<text:p>{value!r}</text:p></table:table-cell>"
        )
    text = escape(str(value))
    return (
        f'<table:table-cell office:value-type="string"><text:p>{text}</text:p></table:table-cell>'
    )


def write_ods(
    path: Path,
    rows: Rows | None = None,
    *,
    sheets: Mapping[str, Rows] | None = None,
) -> Path:
    """An OpenDocument spreadsheet: `mimetype` first and stored, then content and manifest."""
    tables = []
    for name, sheet_rows in _sheets_of(rows, sheets).items():
        width = max((len(row) for row in sheet_rows), default=1) or 1
        body = []
        for row in sheet_rows:
            cells = [_ods_cell(v) for v in row]
            if not cells:
                cells = [f'<table:table-cell table:number-columns-repeated="{width}"/>']
            body.append("<table:table-row>" + "".join(cells) + "</table:table-row>")
        tables.append(
            f'<table:table table:name="{escape(name, {chr(34): "&quot;"})}">'
            f'<table:table-column table:number-columns-repeated="{width}"/>'
            + "".join(body)
            + "</table:table>"
        )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<office:document-content "
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
        'office:version="1.2"><office:body><office:spreadsheet>'
        + "".join(tables)
        + "</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2">'
        f'<manifest:file-entry manifest:full-path="/" manifest:version="1.2" '
        f'manifest:media-type="{ODS_MIMETYPE}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), ODS_MIMETYPE, compress_type=zipfile.ZIP_STORED)
        zf.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
    return path


# --- .csv -------------------------------------------------------------------------------


def csv_text(rows: Rows, *, delimiter: str = ",", crlf: bool = False) -> str:
    """The CSV text of `rows`, quoted only where needed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue()


def write_csv(
    path: Path,
    rows: Rows,
    *,
    delimiter: str = ",",
    bom: bool = False,
    crlf: bool = False,
) -> Path:
    """A UTF-8 CSV file with the chosen delimiter, optional BOM and line ending."""
    data = csv_text(rows, delimiter=delimiter, crlf=crlf).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


# --- hostile files ----------------------------------------------------------------------


def write_truncated_xlsx(path: Path, rows: Rows) -> Path:
    """The first half of the bytes of a valid .xlsx holding `rows`."""
    write_xlsx(path, rows)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_random_bytes(path: Path, size: int = 8192, seed: int = 1234) -> Path:
    """Reproducible random bytes (never valid UTF-8 text at this size)."""
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def write_png(path: Path) -> Path:
    """A tiny but well-formed 1x1 PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00")
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


def write_plain_zip(path: Path) -> Path:
    """A valid zip archive that holds no workbook."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("readme.txt", "This archive holds notes, not a spreadsheet.\n")
        zf.writestr("data/items.txt", "SKU,Name\nA1,Widget\n")
    return path


def _zip_by_hand(path: Path, entries: Sequence[tuple[str, int, int, int, Iterable[bytes]]]) -> None:
    """Write a zip whose entries are given already compressed.

    Each entry is (name, method, crc32, uncompressed size, compressed chunks); method 8 is
    deflate (raw stream), 0 is stored.
    """
    central = []
    with path.open("wb") as out:
        for name, method, crc, usize, chunks in entries:
            offset = out.tell()
            raw_name = name.encode()
            header_at = out.tell()
            out.write(
                struct.pack(
                    "<IHHHHHIIIHH",
                    0x04034B50,
                    20,
                    0,
                    method,
                    0,
                    0x21,
                    crc,
                    0,
                    usize,
                    len(raw_name),
                    0,
                )
            )
            out.write(raw_name)
            csize = 0
            for piece in chunks:
                out.write(piece)
                csize += len(piece)
            end = out.tell()
            out.seek(header_at + 18)
            out.write(struct.pack("<I", csize))
            out.seek(end)
            central.append(
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    20,
                    20,
                    0,
                    method,
                    0,
                    0x21,
                    crc,
                    csize,
                    usize,
                    len(raw_name),
                    0,
                    0,
                    0,
                    0,
                    0,
                    offset,
                )
                + raw_name
            )
        cd_offset = out.tell()
        cd = b"".join(central)
        out.write(cd)
        out.write(
            struct.pack(
                "<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(cd), cd_offset, 0
            )
        )


def _deflated_entry(name: str, data: bytes) -> tuple[str, int, int, int, list[bytes]]:
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    return name, 8, zlib.crc32(data), len(data), [co.compress(data) + co.flush()]


def write_zip_bomb_xlsx(path: Path, *, uncompressed_bytes: int = 3_000_000_000) -> Path:
    """An .xlsx whose sheet XML really inflates to about `uncompressed_bytes`.

    The sheet repeats one row; its deflate stream is one compressed block repeated
    (a full flush resets the compressor, so every block is byte-identical), which keeps
    building it fast and the file small (about 1/1000 of the inflated size). Must stay
    under 4 GiB, as no zip64 records are written.
    """
    if uncompressed_bytes >= 0xFFFFFFFF:
        raise ValueError("the bomb must inflate to less than 4 GiB")
    head = _sheet_document("").encode().split(b"</sheetData>")[0]
    head += b'<row r="1"><c r="A1" t="inlineStr"><is><t>SKU</t></is></c>'
    head += b'<c r="B1" t="inlineStr"><is><t>Name</t></is></c></row>'
    tail = b"</sheetData></worksheet>"
    # Long runs of one byte deflate best (about 1000:1), so each row is one wide cell.
    row = b'<row><c t="inlineStr"><is><t>' + b"X" * 65_000 + b"</t></is></c></row>"
    chunk = row * 16
    repeats = max(1, (uncompressed_bytes - len(head) - len(tail)) // len(chunk))

    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head_z = co.compress(head) + co.flush(zlib.Z_FULL_FLUSH)
    block_z = co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH)
    again_z = co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH)
    if block_z != again_z:
        raise RuntimeError("zlib did not produce repeatable blocks")
    tail_z = co.compress(tail) + co.flush(zlib.Z_FINISH)

    crc = zlib.crc32(head)
    for _ in range(repeats):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + repeats * len(chunk) + len(tail)

    def sheet_chunks() -> Iterable[bytes]:
        yield head_z
        for _ in range(repeats):
            yield block_z
        yield tail_z

    parts = _package_parts(
        ["Items"], set(), main_content_type=XLSX_CONTENT_TYPE, with_strings=False
    )
    entries = [_deflated_entry(name, text.encode()) for name, text in parts.items()]
    entries.append(("xl/worksheets/sheet1.xml", 8, crc & 0xFFFFFFFF, size, sheet_chunks()))
    _zip_by_hand(path, entries)
    return path


# --- an encrypted (password-protected) Office package: OLE2 compound file -----------------

_FREESECT = 0xFFFFFFFF
_ENDOFCHAIN = 0xFFFFFFFE
_FATSECT = 0xFFFFFFFD
_NOSTREAM = 0xFFFFFFFF
_SECTOR = 512


def _dir_entry(
    name: str,
    kind: int,
    *,
    left: int = _NOSTREAM,
    right: int = _NOSTREAM,
    child: int = _NOSTREAM,
    start: int = _ENDOFCHAIN,
    size: int = 0,
) -> bytes:
    raw = name.encode("utf-16-le") + b"\x00\x00" if name else b""
    return struct.pack(
        "<64sHBBIII16sIQQIQ",
        raw.ljust(64, b"\x00"),
        len(raw),
        kind,
        1,  # black
        left,
        right,
        child,
        b"\x00" * 16,
        0,
        0,
        0,
        start,
        size,
    )


def _encryption_info() -> bytes:
    """An agile (4.4) EncryptionInfo stream, as Office writes for a password-protected file."""
    xml = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
        b'<encryption xmlns="http://schemas.microsoft.com/office/2006/encryption" '
        b'xmlns:p="http://schemas.microsoft.com/office/2006/keyEncryptor/password">'
        b'<keyData saltSize="16" blockSize="16" keyBits="256" hashSize="64" '
        b'cipherAlgorithm="AES" cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512" '
        b'saltValue="AAAAAAAAAAAAAAAAAAAAAA=="/>'
        b'<keyEncryptors><keyEncryptor uri="http://schemas.microsoft.com/office/2006/'
        b'keyEncryptor/password"><p:encryptedKey spinCount="100000" saltSize="16" '
        b'blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" '
        b'cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512" '
        b'saltValue="AAAAAAAAAAAAAAAAAAAAAA=="/></keyEncryptor></keyEncryptors></encryption>'
    )
    return struct.pack("<HHI", 4, 4, 0x40) + xml


def write_encrypted_ole2(path: Path) -> Path:
    """A compound file holding `EncryptionInfo` and `EncryptedPackage`, like a
    password-protected .xlsx.

    Layout (512-byte sectors): 0 = FAT, 1 = directory, then each stream padded to 4096
    bytes so it lives in regular sectors rather than the mini stream.
    """
    stream_size = 4096
    info = _encryption_info().ljust(stream_size, b"\x00")
    package = struct.pack("<Q", 12345) + random.Random(7).randbytes(stream_size - 8)
    per_stream = stream_size // _SECTOR
    info_start, package_start = 2, 2 + per_stream
    n_sectors = 2 + 2 * per_stream

    fat = [_FATSECT, _ENDOFCHAIN]
    for start in (info_start, package_start):
        fat += [start + i + 1 for i in range(per_stream - 1)] + [_ENDOFCHAIN]
    assert len(fat) == n_sectors
    fat += [_FREESECT] * (_SECTOR // 4 - len(fat))

    # Siblings are ordered by name length first: EncryptionInfo < EncryptedPackage.
    directory = (
        _dir_entry("Root Entry", 5, child=1)
        + _dir_entry("EncryptionInfo", 2, right=2, start=info_start, size=stream_size)
        + _dir_entry("EncryptedPackage", 2, start=package_start, size=stream_size)
        + _dir_entry("", 0)
    )
    assert len(directory) == _SECTOR

    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        b"\x00" * 16,
        0x003E,  # minor version
        0x0003,  # major version (512-byte sectors)
        0xFFFE,  # byte order
        9,  # sector shift
        6,  # mini sector shift
        b"\x00" * 6,
        0,  # directory sectors (always 0 in version 3)
        1,  # FAT sectors
        1,  # first directory sector
        0,  # transaction signature
        4096,  # mini stream cutoff
        _ENDOFCHAIN,  # first mini FAT sector
        0,  # mini FAT sectors
        _ENDOFCHAIN,  # first DIFAT sector
        0,  # DIFAT sectors
    )
    header += struct.pack("<109I", 0, *([_FREESECT] * 108))
    assert len(header) == _SECTOR
    path.write_bytes(header + struct.pack(f"<{len(fat)}I", *fat) + directory + info + package)
    return path


def with_sheet_appended(path: Path, tail: bytes) -> bytes:
    """The workbook at `path` with `tail` after its first sheet's XML."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            data = source.read(info)
            copy.writestr(
                info.filename, data + tail if info.filename == "xl/worksheets/sheet1.xml" else data
            )
    return out.getvalue()
