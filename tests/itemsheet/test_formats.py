"""Format detection from bytes and the package checks that run before any parsing."""

from __future__ import annotations

import io
import zipfile

import pytest

from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.formats import (
    PASSWORD_PROTECTED,
    Container,
    FileFormat,
    PackageLimits,
    check_package,
    detect_format,
    sniff_container,
)

LIMITS = PackageLimits(
    max_uncompressed_bytes=10 * 2**20, max_compression_ratio=50, max_entries=20, max_cells=1000
)


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in entries.items():
            package.writestr(name, data)
    return buffer.getvalue()


def test_zip_holding_a_workbook_is_xlsx_whatever_the_name() -> None:
    data = zip_bytes({"xl/workbook.xml": b"<workbook/>"})
    assert detect_format(data, filename="items.csv") is FileFormat.XLSX


def test_macro_workbook_is_xlsm() -> None:
    data = zip_bytes({"xl/workbook.xml": b"<workbook/>", "xl/vbaProject.bin": b"x"})
    assert detect_format(data, filename=None) is FileFormat.XLSM


def test_binary_workbook_is_xlsb_and_opendocument_is_ods() -> None:
    assert detect_format(zip_bytes({"xl/workbook.bin": b"x"})) is FileFormat.XLSB
    ods = zip_bytes(
        {"mimetype": b"application/vnd.oasis.opendocument.spreadsheet", "content.xml": b"<x/>"}
    )
    assert detect_format(ods) is FileFormat.ODS


def test_utf8_text_is_csv_even_when_named_xlsx() -> None:
    assert detect_format("SKU;Name\nä;ö\n".encode(), filename="items.xlsx") is FileFormat.CSV


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
        b"%PDF-1.7\n\x00\xff",
        b"",
        # Binary with no NUL byte at all: every legacy code page decodes most of it, and
        # what it decodes to is control characters.
        bytes(range(1, 32)) * 100,
    ],
    ids=["png", "pdf", "empty", "controls"],
)
def test_other_files_are_refused_naming_the_accepted_formats(data: bytes) -> None:
    with pytest.raises(SheetError, match=r"accepted formats: .*xlsx.*csv"):
        detect_format(data)


def test_a_zip_that_is_not_a_workbook_is_refused() -> None:
    with pytest.raises(SheetError, match="accepted formats"):
        detect_format(zip_bytes({"word/document.xml": b"<doc/>"}))


def test_truncated_zip_is_reported_corrupt() -> None:
    data = zip_bytes({"xl/workbook.xml": b"<workbook/>" * 100})
    with pytest.raises(SheetError, match="corrupt or truncated"):
        detect_format(data[: len(data) // 2])


def test_encrypted_ooxml_and_ods_are_password_protected() -> None:
    ole2 = (
        bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00" * 100 + "EncryptedPackage".encode("utf-16-le")
    )
    with pytest.raises(SheetError, match=PASSWORD_PROTECTED):
        detect_format(ole2)
    manifest = b'<manifest><file-entry><encryption-data algorithm="x"/></file-entry></manifest>'
    ods = zip_bytes(
        {
            "mimetype": b"application/vnd.oasis.opendocument.spreadsheet",
            "META-INF/manifest.xml": manifest,
            "content.xml": b"x",
        }
    )
    with pytest.raises(SheetError, match=PASSWORD_PROTECTED):
        detect_format(ods)


def test_plain_ole2_is_xls() -> None:
    assert detect_format(bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00" * 100) is FileFormat.XLS


def test_sniff_container_on_the_first_bytes_only() -> None:
    assert sniff_container(b"PK\x03\x04rest") is Container.ZIP
    assert sniff_container("a,b\né".encode()[:-1]) is Container.TEXT  # cut inside a character
    assert sniff_container(b"\x00\x01\x02") is None


def test_package_that_unpacks_beyond_the_limit_is_refused() -> None:
    data = zip_bytes({"xl/workbook.xml": b"<w/>", "xl/worksheets/sheet1.xml": b" " * (11 * 2**20)})
    with pytest.raises(SheetError, match="when unpacked; the limit is 10 MiB"):
        check_package(data, LIMITS)


def test_highly_compressed_part_is_refused_as_a_zip_bomb() -> None:
    limits = PackageLimits(2**31, 50, 20, 1000)
    data = zip_bytes({"xl/worksheets/sheet1.xml": b"<row/>" * (2 * 2**20)})
    with pytest.raises(SheetError, match="zip bomb"):
        check_package(data, limits)


def test_shared_string_count_beyond_the_cell_limit_is_refused() -> None:
    sst = b'<?xml version="1.0"?><sst count="4000000000" uniqueCount="4000000000"></sst>'
    with pytest.raises(SheetError, match="4,000,000,000 shared strings"):
        check_package(zip_bytes({"xl/sharedStrings.xml": sst}), LIMITS)


def test_doctype_in_a_part_is_refused() -> None:
    part = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><sst>&a;</sst>'
    with pytest.raises(SheetError, match="DOCTYPE"):
        check_package(zip_bytes({"xl/sharedStrings.xml": part}), LIMITS)


@pytest.mark.parametrize(
    ("name", "part"),
    [
        # After a comment longer than any head that might be read first.
        (
            "xl/sharedStrings.xml",
            b'<?xml version="1.0"?><!--' + b"c" * 5000 + b'--><!DOCTYPE x [<!ENTITY a "b">]><sst/>',
        ),
        # A whole part in UTF-16, as XML allows.
        (
            "xl/workbook.xml",
            '<?xml version="1.0" encoding="UTF-16"?><!doctype x><workbook/>'.encode("utf-16"),
        ),
        ("xl/styles.xml", '<!ENTITY a "b">'.encode("utf-16-be")),
        # In a part not named .xml, and straddling two 1 MiB reads.
        ("customXml/item1.bin", b" " * (2**20 - 4) + b"<!ENTITY lol 'x'>"),
        # Cut between its first two characters, in ASCII and in UTF-16.
        ("customXml/item2.bin", b" " * (2**20 - 1) + b"<!doctype x>"),
        ("customXml/item3.bin", b" " * (2**20 - 1) + "<!ENTITY a 'b'>".encode("utf-16-le")),
        ("customXml/item4.bin", b" " * (2**20 - 2) + "<!ENTITY a 'b'>".encode("utf-16-be")),
    ],
)
def test_a_declaration_anywhere_in_any_part_is_refused(name: str, part: bytes) -> None:
    limits = PackageLimits(
        max_uncompressed_bytes=10 * 2**20,
        max_compression_ratio=10_000,
        max_entries=20,
        max_cells=1_000_000,
    )
    with pytest.raises(SheetError, match=f"part '{name}' declares a DOCTYPE or entities"):
        check_package(zip_bytes({name: part}), limits)


def test_markup_that_only_looks_alike_passes() -> None:
    check_package(zip_bytes({"xl/sharedStrings.xml": b"<sst><t>&lt;!DOCTYPE</t></sst>"}), LIMITS)


def test_too_many_parts_are_refused() -> None:
    data = zip_bytes({f"xl/part{i}.xml": b"<x/>" for i in range(25)})
    with pytest.raises(SheetError, match="25 parts; the limit is 20"):
        check_package(data, LIMITS)


def test_ordinary_package_passes() -> None:
    check_package(
        zip_bytes({"xl/workbook.xml": b"<w/>", "xl/worksheets/sheet1.xml": b"<s/>"}), LIMITS
    )


def test_a_worksheet_with_an_error_cell_is_reported_as_holding_some() -> None:
    clean = b'<worksheet><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row></sheetData></worksheet>'
    error = clean.replace(b't="s"><v>0', b't="e"><v>#N/A')
    base = {"xl/workbook.xml": b"<w/>"}
    assert not check_package(
        zip_bytes({**base, "xl/worksheets/sheet1.xml": clean}), LIMITS
    ).may_hold_error_cells
    assert check_package(
        zip_bytes({**base, "xl/worksheets/sheet1.xml": error}), LIMITS
    ).may_hold_error_cells
    # A mark split across two read chunks is still found, wherever it is cut, in either
    # quotes, with no other "e" or quote in either chunk.
    for cell in (b'<c t="e"/>', b"<c t='e'/>"):
        for before in (1, 2):  # the mark starts 1 or 2 bytes before 1 MiB
            padded = b" " * (2**20 - 5 - before) + cell
            assert check_package(
                zip_bytes({**base, "xl/worksheets/sheet1.xml": padded}), LIMITS
            ).may_hold_error_cells, (cell, before)
    # An "e" and quotes in one chunk that are not a mark do not make one.
    apart = b'<c r="A1" t="s"><v>0</v></c>' + b" " * 2**20 + b"<sheetData/>"
    assert not check_package(
        zip_bytes({**base, "xl/worksheets/sheet1.xml": apart}), LIMITS
    ).may_hold_error_cells
    # Worksheets in unusual places are not searched, so they may hold some.
    assert check_package(
        zip_bytes({**base, "xl/sheets/one.xml": clean}), LIMITS
    ).may_hold_error_cells
