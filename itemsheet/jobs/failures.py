"""Why imports fail, in a few classes: a failed job's one-line reason, sorted for the metrics.

A reason is free text written for a person, and parts of it come from the user (file,
sheet and source names in quotes) or from a library (details in parentheses). Those parts
are dropped before the reason is matched, so a file named `corrupt.xlsx` that is missing
counts as an unreadable source, not as a corrupt file. The rules are tried in order; the
first whose phrase occurs wins.
"""

from __future__ import annotations

import re
from enum import StrEnum


class FailureClass(StrEnum):
    """The class of a failed job's reason."""

    UNSUPPORTED = "unsupported"  # not a format we read, encrypted, not UTF-8
    TOO_LARGE = "too_large"  # over a size, unpacked-size, part or cell limit
    CORRUPT = "corrupt"  # a damaged package, or the reader could not make sense of it
    HOSTILE = "hostile"  # a zip bomb, DOCTYPE or entities
    LAYOUT = "layout"  # no such sheet, no header row, a required column missing
    INVALID_ROWS = "invalid_rows"  # on_error=abort and some rows are invalid
    TIMEOUT_OR_MEMORY = "timeout_or_memory"  # the parse hit its time or memory limit
    UNREADABLE_SOURCE = "unreadable_source"  # a CLI path or reimport source cannot be read
    NOT_STARTED = "not_started"  # no flow run could be created, or it ended before it began
    INTERRUPTED = "interrupted"  # stopped more often than automatic resumes allow
    OTHER = "other"  # anything else (a database outage, a bug)


# Phrases of the reasons the import logic writes, checked in this order. The ones that wrap
# another reason ("could not be started within 600 s: <why>") come first, and the parse
# limits before "too large", which their sentences also say.
_RULES: tuple[tuple[FailureClass, tuple[str, ...]], ...] = (
    (FailureClass.NOT_STARTED, ("could not be started within", "before the import began")),
    (FailureClass.INTERRUPTED, ("the import was interrupted",)),
    (FailureClass.LAYOUT, ("not found; sheets:",)),
    (FailureClass.TIMEOUT_OR_MEMORY, ("of memory;", "took longer than")),
    (FailureClass.HOSTILE, ("zip bomb", "doctype")),
    (FailureClass.INVALID_ROWS, ("rows are invalid",)),
    (
        FailureClass.UNSUPPORTED,
        (
            "not a spreadsheet we can read",
            "password-protected",
            "not utf-8 text",
            "not a text file",
        ),
    ),
    (FailureClass.TOO_LARGE, ("the limit is", "than the limit")),
    (FailureClass.CORRUPT, ("corrupt", "cannot be parsed", "reader crashed")),
    (
        FailureClass.LAYOUT,
        (
            "no worksheets",
            "no visible worksheet",
            "no header row",
            "required column",
            "both map to",
        ),
    ),
    (FailureClass.UNREADABLE_SOURCE, ("does not exist", "cannot be read", "is a folder")),
)
_QUOTED = re.compile(r"'[^']*'|\([^)]*\)")


def classify_failure(reason: str | None) -> FailureClass:
    """The class of a failed job's one-line `reason` (None or unknown text: `other`)."""
    if not reason:
        return FailureClass.OTHER
    text = " ".join(_QUOTED.sub("''", reason).lower().split())
    for failure, phrases in _RULES:
        if any(phrase in text for phrase in phrases):
            return failure
    return FailureClass.OTHER
