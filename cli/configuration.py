"""The configuration table of the docs, made from `settings.Settings`: names, defaults and
descriptions have one source, and `tests/cli/test_configuration.py` checks the docs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from itemsheet.sheet.sizes import human_size
from settings import Settings

DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
BEGIN = "<!-- configuration table: made by `uv run importer config --markdown --into"
END = "<!-- end of the configuration table -->"
REGENERATE = "uv run importer config --markdown --into docs/configuration.md"


def _default(name: str, value: object) -> str:
    """A default as the table shows it."""
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if name.endswith("_bytes") and isinstance(value, int):
        return f"`{value}` ({human_size(value)})"
    return f"`{value}`"


def settings_table() -> str:
    """One row per setting: the variable, its default and its description."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `IMPORTER_{name.upper()}` | {_default(name, field.default)} | {meaning} |")
    return "\n".join(rows) + "\n"


def docs_with_table(text: str) -> str:
    """`text` (the configuration docs) with the table between its markers made anew."""
    start = text.index(BEGIN)
    start = text.index("\n", start) + 1
    end = text.index(END, start)
    return text[:start] + settings_table() + text[end:]


def undescribed() -> list[str]:
    """Settings without a description: the table would have nothing to say of them."""
    return [name for name, field in Settings.model_fields.items() if not field.description]
