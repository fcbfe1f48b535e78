"""Sizes read the same in every message, on the page and in the API."""

from __future__ import annotations

import pytest

from itemsheet.sheet.sizes import human_size


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1,023 bytes"),
        (1024, "1 KiB"),
        (12_800, "12.5 KiB"),
        (2_000_000, "1.9 MiB"),
        (50 * 2**20, "50 MiB"),
        (10 * 2**30, "10 GiB"),
        (3 * 2**40 + 2**39, "3.5 TiB"),
        (5000 * 2**40, "5,000 TiB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text
