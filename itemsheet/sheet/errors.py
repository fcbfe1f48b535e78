"""The one exception a user ever sees from the import logic."""

from __future__ import annotations

from typing import Any


class SheetError(Exception):
    """A file or sheet that cannot be imported; `str()` is a one-line reason for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(reason.split()))

    @property
    def reason(self) -> str:
        """The one-line reason."""
        return str(self)


class MappingNeeded(SheetError):
    """The columns cannot be read as mapped (no SKU column, or two columns for one field);
    `columns` are the header row's cells (the likeliest row when no SKU was found), so a
    person can map them: a review shows them instead of failing the job. `reading` says how
    a text file was read (a wrong delimiter or encoding is a likely cause)."""

    def __init__(
        self,
        reason: str,
        *,
        columns: list[dict[str, Any]],
        header_row: int | None,
        reading: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__(reason)
        self.columns = columns
        self.header_row = header_row
        self.reading = reading
