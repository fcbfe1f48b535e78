"""Item sheets for the benchmarks, written straight as SpreadsheetML (fast enough for 1M rows).

The layout is what Excel writes: text cells point into a shared string table, numbers
are plain values. Row `i` of a sheet is item `SKU-{i:07d}`; `changed_every` gives every
n-th item a new price, so a sheet can be replayed against a table seeded with other rows.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

HEADER = ["SKU", "Name", "Description", "Category", "Unit", "Price", "Qty", "Barcode"]

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    ' xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Items" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)
_COLUMNS = "ABCDEFGH"


def item_row(i: int, *, changed_every: int = 0) -> list[str | float | int]:
    """The cells of item `i` (a new price when `changed_every` picks it)."""
    price = round(1 + (i % 997) * 0.25, 2)
    if changed_every and i % changed_every == 0:
        price += 1
    return [
        f"SKU-{i:07d}",
        f"Item {i}",
        f"Description of item {i}",
        f"Group {i % 50}",
        "pcs",
        price,
        i % 1000,
        f"{5900000000000 + i}",
    ]


def item_rows(
    start: int, stop: int, *, changed_every: int = 0
) -> Iterator[list[str | float | int]]:
    """Items `start` to `stop - 1`."""
    for i in range(start, stop):
        yield item_row(i, changed_every=changed_every)


def write_xlsx(path: Path, rows: Iterator[list[str | float | int]]) -> Path:
    """Write `rows` under the item header as a one-sheet .xlsx with a shared string table."""
    strings: dict[str, int] = {}

    def cell(ref: str, value: str | float | int) -> str:
        if isinstance(value, str):
            index = strings.setdefault(value, len(strings))
            return f'<c r="{ref}" t="s"><v>{index}</v></c>'
        return f'<c r="{ref}"><v>{value}</v></c>'

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _ROOT_RELS)
        package.writestr("xl/workbook.xml", _WORKBOOK)
        package.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        with package.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                b"<sheetData>"
            )
            chunk: list[str] = []
            for number, values in enumerate([HEADER], start=1):
                cells = "".join(
                    cell(f"{c}{number}", v) for c, v in zip(_COLUMNS, values, strict=False)
                )
                chunk.append(f'<row r="{number}">{cells}</row>')
            for number, values in enumerate(rows, start=2):
                cells = "".join(
                    cell(f"{c}{number}", v) for c, v in zip(_COLUMNS, values, strict=False)
                )
                chunk.append(f'<row r="{number}">{cells}</row>')
                if len(chunk) >= 10_000:
                    sheet.write("".join(chunk).encode())
                    chunk.clear()
            sheet.write("".join(chunk).encode())
            sheet.write(b"</sheetData></worksheet>")
        with package.open("xl/sharedStrings.xml", "w", force_zip64=True) as table:
            table.write(
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
                f' count="{len(strings)}" uniqueCount="{len(strings)}">'.encode()
            )
            batch: list[str] = []
            for text in strings:
                batch.append(f"<si><t>{escape(text)}</t></si>")
                if len(batch) >= 10_000:
                    table.write("".join(batch).encode())
                    batch.clear()
            table.write("".join(batch).encode())
            table.write(b"</sst>")
    return path
