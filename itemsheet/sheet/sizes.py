"""Byte counts as every message and page of the service states them."""

from __future__ import annotations

UNITS = ("KiB", "MiB", "GiB", "TiB")


def human_size(size: int | float) -> str:
    """Binary units, at most one decimal, none when whole: 512 bytes, 12.5 KiB, 50 MiB.

    The page's `formatBytes` (api/static/js/format.js) writes sizes the same way.
    """
    if size < 1024:
        return f"{int(size):,} bytes"
    value, unit = size / 1024, 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:,.1f}".removesuffix(".0") + f" {UNITS[unit]}"
