"""CSV as the service writes it for people to open in a spreadsheet: UTF-8 with a byte
order mark (Excel reads a CSV as UTF-8 only then), every cell quoted (Excel in locales
whose list separator is `;` (de, fr, nl) reads a comma CSV at `;` and would split an
unquoted `x;=HYPERLINK(...)` into a formula cell), CRLF line ends. The errors report, the
export, the template and the rejected rows are all written by `CsvText`.

A spreadsheet runs a CSV cell starting with `=`, `+`, `-`, `@`, tab or CR as a formula (or
a DDE call), so text cells are guarded with a leading `'`, by one of two rules:

- `guard_cell`, for text a CSV import reads back (an export, the rejected rows of a
  workbook): a text that already starts with `'`s before one of those characters gets one
  too. The importer reads a text file's cell of that shape without its first `'`
  (`itemsheet.sheet.validate`), the exact inverse: `=SUM(A1)` goes out as `'=SUM(A1)` and
  `'=x` as `''=x`, and both come back as they were.
- `guard_formula`, for a cell handed back as a CSV file held it (the rejected rows of a
  CSV) and for a report no import reads: only a cell a spreadsheet would run gets the
  `'`; a cell that starts with `'` already is left as written, so it reads back as it
  did from the original file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

UTF8_BOM = "\ufeff"
# What a formula (or DDE call) starts with in a spreadsheet's eyes.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# `guard_cell`'s test: `'`s then a formula start. The first character rules out nearly
# every cell before the pattern is asked (`GUARD_FIRST`).
GUARDED = re.compile(r"'*[=+\-@\t\r]")
GUARD_FIRST = frozenset("'=+-@\t\r")


def guard_cell(text: str) -> str:
    """A CSV cell no spreadsheet runs as a formula, which the importer reads back as `text`."""
    if text[:1] in GUARD_FIRST and GUARDED.match(text):
        return f"'{text}"
    return text


def guard_formula(text: str | None) -> str:
    """A CSV cell no spreadsheet runs as a formula: a leading `=+-@`, tab or CR gets a `'`;
    anything else, a `'` first included, is written as it is (None as empty)."""
    if not text:
        return ""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class CsvText:
    """Rows as CSV text, a chunk at a time: the first chunk starts with the byte order mark.

    Cells are written as they are given (None as empty); guarding them is the caller's.
    """

    def __init__(self, *, delimiter: str = ",") -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(
            self._buffer, delimiter=delimiter, lineterminator="\r\n", quoting=csv.QUOTE_ALL
        )
        self._started = False

    def rows(self, rows: Iterable[Sequence[Any]]) -> str:
        """The text of `rows`."""
        self._writer.writerows(rows)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        if not self._started:
            self._started = True
            text = UTF8_BOM + text
        return text
