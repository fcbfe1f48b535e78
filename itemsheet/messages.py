"""Bounded text from the file: every message a job keeps is short, and so is their list.

A workbook decides what its header cells, sheet names and values say; without bounds, one
with 3,000 unknown 2,000-character headers made every progress answer, event and history
row 6 MB long. Each message is cut to `MESSAGE_CHARS`, a value quoted in one to
`QUOTED_CHARS`, and a job keeps at most `MAX_WARNINGS` warnings, the last saying how many
more there were. A header, as a mapping names it (its key), keeps at most `KEY_CHARS`: the
same headers made a 6.5 MB preview and a 6 MB saved mapping while keys were whole.
"""

from __future__ import annotations

from collections.abc import Iterable

MESSAGE_CHARS = 200
# A job's one-line reason may quote a message of its own (a database error, a source).
ERROR_CHARS = 400
QUOTED_CHARS = 60
MAX_WARNINGS = 20
NAME_CHARS = 255
KEY_CHARS = 255
ELLIPSIS = "…"


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
