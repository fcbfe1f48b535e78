"""The pipeline's flow tests run on the embedded SQLite and on a real PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    """Both backends; PostgreSQL skips (saying how to install it) where it cannot start."""
    return str(request.param)
