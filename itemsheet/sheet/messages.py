"""Bounded text from the file: every message a job keeps is short, and so is their list.

A workbook decides what its header cells, sheet names and values say; without bounds, one
with 3,000 unknown 2,000-character headers made every progress answer, event and history
row 6 MB long. Each message is cut to `MESSAGE_CHARS`, a value quoted in one to
`QUOTED_CHARS`, and a job keeps at most `MAX_WARNINGS` warnings, the last saying how many
more there were. A header, as a mapping names it (its key), keeps at most `KEY_CHARS`: the
same headers made a 6.5 MB preview and a 6 MB saved mapping while keys were whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MESSAGE_CHARS = 200
# A job's one-line reason may quote a message of its own (a database error, a source).
ERROR_CHARS = 400
QUOTED_CHARS = 60
MAX_WARNINGS = 20
NAME_CHARS = 255
KEY_CHARS = 255
ELLIPSIS = "…"
_MORE = re.compile(r"^\.\.\. and ([\d,]+) more$")
_KEPT = re.compile(
    r"^[\d,]+ rows? failed(?: and [\d,]+ (?:was|were) skipped)?;"
    r" the first [\d,]+ row (?:errors?|messages?) (?:are|is) kept$"
)


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` on one line, at most `limit` characters (cut with an ellipsis)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + ELLIPSIS


def quoted(value: str, limit: int = QUOTED_CHARS) -> str:
    """A value from the file, quoted and clipped, for a message: 'Colour'."""
    return f"'{clip(value, limit)}'"


def capped(messages: Iterable[str], limit: int = MAX_WARNINGS) -> list[str]:
    """Each message clipped; past `limit`, the rest said as '... and N more'."""
    kept = [clip(m) for m in messages]
    if len(kept) <= limit:
        return kept
    return [*kept[: limit - 1], f"... and {len(kept) - limit + 1:,} more"]


def kept_errors_warning(failed: int, kept: int, skipped: int = 0) -> str:
    """`300,000 rows failed; the first 10,000 row errors are kept`; with rows the mode
    skipped: `250,000 rows failed and 50,000 were skipped; the first 10,000 row messages
    are kept`."""
    if not skipped:
        errors = "row error is" if kept == 1 else "row errors are"
        return f"{failed:,} rows failed; the first {kept:,} {errors} kept"
    were = "was" if skipped == 1 else "were"
    messages = "row message is" if kept == 1 else "row messages are"
    return (
        f"{failed:,} rows failed and {skipped:,} {were} skipped; the first {kept:,} {messages} kept"
    )


def has_kept_errors_warning(messages: list[str]) -> bool:
    """One of `messages` says that not every row error is kept."""
    return any(_KEPT.match(m) for m in messages)


def with_kept_errors(messages: list[str], *, failed: int, kept: int, skipped: int = 0) -> list[str]:
    """`messages` with the warning that only `kept` of `failed` row errors are kept, first
    (replacing an older one), or without it when every error is kept; still at most
    `MAX_WARNINGS`, the last saying how many more there are."""
    rest = [m for m in messages if not _KEPT.match(m)]
    hidden = 0
    if rest and (more := _MORE.match(rest[-1])):
        hidden = int(more[1].replace(",", ""))
        rest.pop()
    shown = [kept_errors_warning(failed, kept, skipped), *rest] if kept < failed + skipped else rest
    if not hidden and len(shown) <= MAX_WARNINGS:
        return shown
    hidden += max(0, len(shown) - (MAX_WARNINGS - 1))
    return [*shown[: MAX_WARNINGS - 1], f"... and {hidden:,} more"]
