"""From file bytes to validated rows: sniff, check the package, read, find header, validate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from itemsheet.sheet.checked import read_checked
from itemsheet.sheet.errors import MappingNeeded, SheetError
from itemsheet.sheet.formats import FileFormat, PackageLimits, detect_format
from itemsheet.sheet.header import MappingChoice, SavedMapping, find_header
from itemsheet.sheet.messages import quoted
from itemsheet.sheet.reader import Grid, TextOptions, read_grid
from itemsheet.sheet.text import DELIMITER_NAMES, How, check_encoding_name
from itemsheet.sheet.validate import Validated, unnamed, validate

NO_DATA_ROWS = "the sheet has no data rows below its header"


@dataclass
class SheetSummary:
    """What a prepared sheet holds, apart from its rows."""

    file_format: str
    sheet_name: str | None
    fields: list[str]
    total_rows: int
    invalid_rows: int
    warnings: list[str] = field(default_factory=list)
    # Valid rows without a name: each fails at write time if its SKU is new.
    unnamed_rows: int = 0
    # The header: its row number, how it was mapped ("explicit", "saved", "aliases"), the
    # identity of its set of headers, its whole mapping and each column described.
    header_row: int = 0
    mapping_source: str = "aliases"
    header_key: str = ""
    mapping: dict[str, str | None] = field(default_factory=dict)
    columns: list[dict[str, Any]] = field(default_factory=list)
    # How the file was read: `encoding`, `delimiter` (text files) and `decimal` (sheets
    # with numbers), each {"value", "how", ...}.
    reading: dict[str, dict[str, str]] = field(default_factory=dict)


def prepare(
    data: bytes,
    *,
    filename: str | None,
    sheet: str | None,
    limits: PackageLimits,
    choice: MappingChoice | None = None,
    options: TextOptions | None = None,
    scratch: Path | None = None,
    on_refused: Callable[[SheetError], None] | None = None,
) -> tuple[Validated, SheetSummary]:
    """Read and validate a whole file; raise `SheetError` with a one-line reason if it can't be.

    `options` are a person's choices of encoding, delimiter and decimal mark; `scratch` is
    where a text file in another encoding than UTF-8 is transcoded while it is read.
    `on_refused` hears at once of a package its check refuses (`checked.read_checked`).
    """
    options = options or TextOptions()
    fmt = detect_format(data, filename=filename, encoding=options.encoding)
    warnings: list[str] = []
    if fmt is FileFormat.CSV and sheet not in (None, "", "0"):
        warnings.append(
            f"a CSV file has a single sheet; the sheet option {quoted(sheet)} was ignored"
        )
        sheet = None
    grid = read_checked(
        data,
        fmt,
        limits=limits,
        sheet=sheet,
        options=options,
        scratch=scratch,
        on_refused=on_refused,
    )
    if grid.frame.height * max(grid.frame.width, 1) > limits.max_cells:
        raise SheetError(
            f"the sheet holds {grid.frame.height * grid.frame.width:,} cells;"
            f" the limit is {limits.max_cells:,}"
        )
    try:
        header = find_header(grid.frame, grid.rows, choice)
    except MappingNeeded as exc:
        exc.reading = _reading(grid, None)
        raise
    saved = choice.saved.get(header.key) if choice else None
    if saved is not None:
        remembered = _with_saved(options, saved)
        if grid.text is not None and _reads_otherwise(grid, remembered):
            # The layout was read before with other choices: read it as it was then.
            grid = read_grid(data, fmt, options=remembered, scratch=scratch)
            header = find_header(grid.frame, grid.rows, choice)
        options = remembered
    decimal, decimal_how = options.decimal, options.how("decimal")
    validated = validate(grid, header, decimal=decimal, decimal_how=decimal_how)
    reading = _reading(grid, validated)
    warnings.extend(_reading_warnings(grid, validated))
    warnings.extend(header.warnings)
    total = validated.frame.height
    if total == 0:
        warnings.append(NO_DATA_ROWS)
    invalid = validated.frame.get_column("error_message").is_not_null().sum()
    summary = SheetSummary(
        fmt.value,
        grid.sheet_name,
        validated.fields,
        total,
        int(invalid),
        warnings,
        unnamed(validated.frame).height,
        header.row,
        header.source,
        header.key,
        header.mapping,
        header.described,
        reading,
    )
    return validated, summary


def _with_saved(options: TextOptions, saved: SavedMapping) -> TextOptions:
    """`options`, with the choices saved with a mapping where this import made none."""
    filled = {
        name: getattr(saved, name)
        for name in ("encoding", "delimiter", "decimal")
        if getattr(options, name) is None and getattr(saved, name)
    }
    if not filled:
        return options
    return replace(options, **filled, saved=options.saved | frozenset(filled))


def _reads_otherwise(grid: Grid, options: TextOptions) -> bool:
    """A text file read with other choices than `options` names."""
    layout = grid.text
    assert layout is not None
    other_encoding = options.encoding is not None and (
        check_encoding_name(options.encoding) != layout.encoding.codec
    )
    return other_encoding or options.delimiter not in (None, layout.delimiter)


def _reading(grid: Grid, validated: Validated | None) -> dict[str, dict[str, str]]:
    """How the file was read, for the job and its review."""
    found: dict[str, dict[str, str]] = {}
    if grid.text is not None:
        encoding = grid.text.encoding
        found["encoding"] = {
            "value": encoding.codec,
            "label": encoding.label,
            "how": str(encoding.how),
        }
        found["delimiter"] = {
            "value": grid.text.delimiter,
            "label": DELIMITER_NAMES[grid.text.delimiter],
            "how": str(grid.text.delimiter_how),
        }
    if validated is not None and validated.numbers is not None:
        found["decimal"] = validated.numbers.to_json()
    return found


def _reading_warnings(grid: Grid, validated: Validated) -> list[str]:
    """`read as Windows-1252 (detected), ';'-separated` when a text file is not UTF-8 and
    ','; the decimal mark when a person should know it."""
    found: list[str] = []
    layout = grid.text
    if layout is not None and (layout.encoding.codec != "utf-8" or layout.delimiter != ","):
        how = "" if layout.encoding.how is How.VALID_UTF8 else f" ({layout.encoding.how})"
        found.append(
            f"read as {layout.encoding.label}{how}, {DELIMITER_NAMES[layout.delimiter]}-separated"
        )
    if validated.numbers is not None:
        found.extend(validated.numbers.warnings())
    return found


def write_rows(validated: Validated, path: Path, *, batch_rows: int | None = None) -> None:
    """Keep the validated rows for the writer, as uncompressed Arrow IPC (cheap to read), in
    record batches of `batch_rows` rows: the job's batch size, so that the writer reads
    one batch at a time (`itemsheet.sandbox.row_batches`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    validated.frame.write_ipc(tmp, compression="uncompressed", record_batch_size=batch_rows)
    tmp.replace(path)
