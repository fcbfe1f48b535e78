"""The one exception a user ever sees from the import logic."""

from __future__ import annotations


class SheetError(Exception):
    """A file or sheet that cannot be imported; `str()` is a one-line reason for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(reason.split()))

    @property
    def reason(self) -> str:
        """The one-line reason."""
        return str(self)
