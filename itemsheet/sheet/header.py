"""Find the header row of a grid and map its cells to item fields.

Each header cell is mapped by the first of: the mapping given with the import (explicit),
a mapping saved by an earlier import of a sheet with the same headers (saved), the
aliases of the contract. A mapping names a field or None (the column is ignored).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from itemsheet.sheet.errors import MappingNeeded, SheetError
from itemsheet.sheet.fields import FIELD_NAMES, field_for_header, fold_header, normalise_header
from itemsheet.sheet.messages import KEY_CHARS, clip, quoted

HEADER_SEARCH_ROWS = 20
SAMPLE_VALUES = 3
SAMPLE_CHARS = 60
# A mapping a person gives is stored with the job and shown in every answer about it.
MAPPING_BYTES = 64 * 1024
# The column a rejected-rows download adds (`itemsheet.downloads.rejected`): why each row failed.
# Uploaded again once fixed, it is ignored without a warning and makes no row non-empty.
ERROR_HEADER = "Error"


@dataclass(frozen=True)
class SavedMapping:
    """A mapping an earlier import saved for one set of headers."""

    columns: dict[str, str | None]
    saved_by: str
    saved_at: str
    # The reading choices a person made with this mapping, if any.
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None


@dataclass(frozen=True)
class MappingChoice:
    """What the importer is told about columns: `explicit` (normalised header -> field or
    None), saved mappings by header key, and the header's row number, if given."""

    explicit: dict[str, str | None] = field(default_factory=dict)
    saved: dict[str, SavedMapping] = field(default_factory=dict)
    header_row: int | None = None

    def to_json(self) -> dict[str, Any]:
        """As plain JSON values (for the parse child)."""
        saved = {k: vars(v) for k, v in self.saved.items()}
        return {"explicit": self.explicit, "saved": saved, "header_row": self.header_row}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MappingChoice:
        """The inverse of `to_json`."""
        saved = {k: SavedMapping(**v) for k, v in (data.get("saved") or {}).items()}
        return cls(dict(data.get("explicit") or {}), saved, data.get("header_row"))


@dataclass(frozen=True)
class Header:
    """Where the header is and which grid column holds each field.

    `columns`: field -> grid column; `described`: every non-empty header cell with its
    field, where that came from and a few sample values (for a review); `mapping`: the
    whole header set's mapping (normalised header -> field or None), which an import with
    an explicit mapping saves under `key`.
    """

    index: int
    columns: dict[str, str]
    warnings: list[str]
    row: int = 0
    source: str = "aliases"
    key: str = ""
    described: list[dict[str, Any]] = field(default_factory=list)
    mapping: dict[str, str | None] = field(default_factory=dict)
    # Grid columns that are not data: a rejected-rows file's Error column.
    notes: tuple[str, ...] = ()


def is_error_header(label: str | None) -> bool:
    """The header cell is the Error column of a rejected-rows download."""
    return normalise_header(label) == normalise_header(ERROR_HEADER)


def header_key(cells: list[str | None]) -> str:
    """The identity of a set of headers: order, case and spacing do not matter."""
    # Whole headers, not keys: a set saved before keys were clipped keeps its identity.
    names = sorted({fold_header(c) for c in cells if c and c.strip()})
    return hashlib.sha256("\x1f".join(names).encode()).hexdigest()[:32]


def _field_of(
    label: str, explicit: dict[str, str | None], saved: SavedMapping | None
) -> tuple[str | None, str | None]:
    """(field, where it came from) for one header cell; (None, None): not an item field."""
    name = normalise_header(label)
    if name in explicit:
        return explicit[name], "explicit"
    if saved is not None and name in saved.columns:
        return saved.columns[name], "saved"
    alias = field_for_header(label)
    return (alias, "aliases") if alias else (None, None)


def _has_sku(cells: list[str | None], choice: MappingChoice, saved: SavedMapping | None) -> bool:
    return any(cell and _field_of(cell, choice.explicit, saved)[0] == "sku" for cell in cells)


def find_header(
    frame: pl.DataFrame, rows: pl.Series | None = None, choice: MappingChoice | None = None
) -> Header:
    """The header row (the given one, or the first of the first 20 holding an SKU column),
    mapped to fields.

    `rows` are the row numbers a user sees for each frame row. Fails when there is no SKU
    column (`MappingNeeded`, with the likeliest header's cells) or two cells name the same
    field. The SKU is the only column every sheet must have, and finding the row needs it.
    """
    choice = choice or MappingChoice()
    numbers = rows.to_list() if rows is not None else list(range(1, frame.height + 1))
    if choice.header_row is not None:
        if choice.header_row not in numbers:
            raise SheetError(f"the sheet has no row {choice.header_row} to read the header from")
        index = numbers.index(choice.header_row)
        cells = list(frame.row(index))
        saved = choice.saved.get(header_key(cells))
        if _has_sku(cells, choice, saved):
            return _map_header(frame, index, numbers[index], cells, choice, saved)
        raise MappingNeeded(
            f"row {choice.header_row} has no SKU column; map one of its columns to sku",
            columns=_describe(frame, index, cells, choice, None),
            header_row=choice.header_row,
        )
    for index, cells_t in enumerate(frame.head(HEADER_SEARCH_ROWS).iter_rows()):
        cells = list(cells_t)
        saved = choice.saved.get(header_key(cells))
        if _has_sku(cells, choice, saved):
            return _map_header(frame, index, numbers[index], cells, choice, saved)
    guess = _likeliest_header(frame)
    raise MappingNeeded(
        f"no header row with an SKU column was found in the first {HEADER_SEARCH_ROWS} rows;"
        " name the column 'SKU' (or 'Item code', 'Code', 'Article', ...) or map a column to sku",
        columns=[] if guess is None else _describe(frame, guess, list(frame.row(guess)), choice),
        header_row=None if guess is None else numbers[guess],
    )


def _likeliest_header(frame: pl.DataFrame) -> int | None:
    """The first of the first 20 rows with the most non-empty, non-numeric cells."""
    best, best_count = None, 0
    for index, cells in enumerate(frame.head(HEADER_SEARCH_ROWS).iter_rows()):
        count = sum(1 for c in cells if c and c.strip() and not _numeric(c))
        if count > best_count:
            best, best_count = index, count
    return best


def _numeric(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _describe(
    frame: pl.DataFrame,
    index: int,
    cells: list[str | None],
    choice: MappingChoice,
    saved: SavedMapping | None = None,
) -> list[dict[str, Any]]:
    """Each non-empty header cell: its label, field, source and first sample values."""
    below = frame.slice(index + 1, 200)
    described: list[dict[str, Any]] = []
    for column, label in zip(frame.columns, cells, strict=True):
        if label is None or not label.strip():
            continue
        mapped, source = _field_of(label, choice.explicit, saved)
        samples = [
            clip(v.strip(), SAMPLE_CHARS)
            for v in below.get_column(column).drop_nulls().to_list()
            if v.strip()
        ][:SAMPLE_VALUES]
        described.append(
            {
                "column": column,
                # What a mapping names the column by (the header itself may be clipped).
                "key": normalise_header(label),
                "header": clip(label.strip(), SAMPLE_CHARS),
                "field": mapped,
                "source": source,
                "samples": samples,
            }
        )
    return described


def _map_header(
    frame: pl.DataFrame,
    index: int,
    row: int,
    cells: list[str | None],
    choice: MappingChoice,
    saved: SavedMapping | None,
) -> Header:
    columns: dict[str, str] = {}
    labels: dict[str, str] = {}
    ignored: list[str] = []
    mapping: dict[str, str | None] = {}
    sources: set[str] = set()
    notes: list[str] = []
    for column, label in zip(frame.columns, cells, strict=True):
        if label is None or not label.strip():
            continue
        mapped, source = _field_of(label, choice.explicit, saved)
        mapping[normalise_header(label)] = mapped
        if source is not None:
            sources.add(source)
        if mapped is None and source is None and is_error_header(label):
            notes.append(column)  # the messages of a rejected-rows file, fixed and sent back
        elif mapped is None:
            if source is None:  # a column a person chose to ignore is not worth a warning
                ignored.append(label.strip())
        elif mapped in columns:
            raise MappingNeeded(
                f"columns {quoted(labels[mapped])} and {quoted(label)} both map to {mapped};"
                " keep one of them",
                columns=_describe(frame, index, cells, choice, saved),
                header_row=row,
            )
        else:
            columns[mapped] = column
            labels[mapped] = label.strip()
    ordered = {f: columns[f] for f in FIELD_NAMES if f in columns}
    warnings = [f"column {quoted(label)} is not an item field and was ignored" for label in ignored]
    source = next((s for s in ("explicit", "saved") if s in sources), "aliases")
    if saved is not None and "saved" in sources:
        warnings.insert(
            0,
            f"columns were mapped by the mapping saved for these headers"
            f" by {quoted(saved.saved_by)} on {saved.saved_at[:10]}",
        )
    return Header(
        index,
        ordered,
        warnings,
        row=row,
        source=source,
        key=header_key(cells),
        described=_describe(frame, index, cells, choice, saved),
        mapping=mapping,
        notes=tuple(notes),
    )


def clip_keys(mapping: Mapping[str, str | None]) -> dict[str, str | None]:
    """A stored mapping keyed as headers are now (one saved before keys were clipped held
    whole headers)."""
    return {normalise_header(name): target for name, target in mapping.items()}


def check_mapping_size(given: Mapping[Any, Any]) -> None:
    """Refuse (ValueError) a mapping with a header over `KEY_CHARS` characters or over
    `MAPPING_BYTES` of JSON, before anything keeps it."""
    longest = max((len(str(header)) for header in given), default=0)
    if longest > KEY_CHARS:
        raise ValueError(
            f"the mapping names a header of {longest:,} characters; name a header by at most"
            f" its first {KEY_CHARS} characters, as the preview's key shows it"
        )
    size = len(json.dumps(given, ensure_ascii=False, separators=(",", ":"), default=str).encode())
    if size > MAPPING_BYTES:
        raise mapping_too_big(size)


def mapping_too_big(size: int) -> ValueError:
    """The refusal of a mapping of `size` bytes of JSON."""
    return ValueError(
        f"the mapping is {size:,} bytes of JSON; the most is {MAPPING_BYTES:,}: map only the"
        " columns that need it"
    )


def explicit_mapping(given: Mapping[str, str | None]) -> dict[str, str | None]:
    """A mapping as a person gave it (header -> field name, or None/"" to ignore the
    column), checked and keyed by normalised header; ValueError says what is wrong."""
    check_mapping_size(given)
    mapping: dict[str, str | None] = {}
    for header, target in given.items():
        name = normalise_header(header)
        if not name:
            raise ValueError("a mapping names an empty header")
        chosen = (target or "").strip().casefold() or None
        if chosen is not None and chosen not in FIELD_NAMES:
            raise ValueError(
                f"the mapping of {quoted(header)} names {quoted(str(target))}, which is not a"
                f" field; fields: {', '.join(FIELD_NAMES)} (or nothing, to ignore the column)"
            )
        mapping[name] = chosen
    return mapping
