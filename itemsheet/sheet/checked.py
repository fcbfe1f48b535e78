"""A workbook read while its package is checked, on two cores, with one verdict.

Checking a package means unpacking every part (`formats.check_parts`): for a 1M-row sheet
about 1.7 s, which used to come before a parse of about 4.5 s. The parser releases the GIL,
so the check now runs in a thread beside it. What the package's directory declares is
still checked first (`formats.check_declared`, no unpacking), and the check decides:
a refused package fails with the check's reason, whatever the parse made of it, and
`on_refused` may end the work at once (the parse child exits rather than parse a bomb to
its memory limit).

The parse does not wait to learn whether the sheet holds error cells (only the check can
say): it reads without collecting them, and a sheet whose check found error marks is read
again with them, which only such sheets pay for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.formats import (
    FileFormat,
    PackageLimits,
    PackageReport,
    check_declared,
    check_parts,
)
from itemsheet.sheet.reader import Grid, TextOptions, read_grid

PACKAGES = (FileFormat.XLSX, FileFormat.XLSM, FileFormat.XLSB, FileFormat.ODS)
# Only an .xlsx/.xlsm worksheet is searched for error cells; others always collect them.
SEARCHED = (FileFormat.XLSX, FileFormat.XLSM)


def read_checked(
    data: bytes,
    fmt: FileFormat,
    *,
    limits: PackageLimits,
    sheet: str | None = None,
    options: TextOptions | None = None,
    scratch: Path | None = None,
    on_refused: Callable[[SheetError], None] | None = None,
) -> Grid:
    """`read_grid`, for a zip package only once its check passed (see the module doc)."""
    if fmt not in PACKAGES:
        return read_grid(data, fmt, sheet=sheet, options=options, scratch=scratch)
    check_declared(data, limits)
    check = _Check(data, limits, on_refused)
    check.start()
    try:
        grid = read_grid(data, fmt, sheet=sheet, error_cells=fmt not in SEARCHED)
    except BaseException as exc:
        report = check.report()  # a refused package: the check's reason, not the parser's
        if not (isinstance(exc, Exception) and report.may_hold_error_cells and fmt in SEARCHED):
            raise
        # Read as it would have been read had the check come first.
        return read_grid(data, fmt, sheet=sheet, error_cells=True)
    if check.report().may_hold_error_cells and fmt in SEARCHED:
        del grid
        grid = read_grid(data, fmt, sheet=sheet, error_cells=True)
    return grid


class _Check(threading.Thread):
    def __init__(
        self,
        data: bytes,
        limits: PackageLimits,
        on_refused: Callable[[SheetError], None] | None,
    ) -> None:
        super().__init__(name="package-check", daemon=True)
        self._data = data
        self._limits = limits
        self._on_refused = on_refused
        self._outcome: PackageReport | BaseException | None = None

    def run(self) -> None:
        try:
            self._outcome = check_parts(self._data, self._limits)
        except SheetError as exc:
            self._outcome = exc
            if self._on_refused is not None:
                self._on_refused(exc)
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._outcome = exc

    def report(self) -> PackageReport:
        """Wait for the check: its report, or its refusal raised."""
        self.join()
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        assert self._outcome is not None
        return self._outcome
