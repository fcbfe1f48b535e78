"""The docs' configuration table is made from `settings.Settings` and is current."""

from __future__ import annotations

from cli.configuration import DOCS_FILE, REGENERATE, docs_with_table, settings_table, undescribed
from settings import Settings


def test_every_setting_has_a_description_for_the_table() -> None:
    assert undescribed() == []


def test_the_table_has_one_row_per_setting_with_its_default() -> None:
    rows = settings_table().splitlines()[2:]

    assert len(rows) == len(Settings.model_fields)
    assert "| `IMPORTER_IMPORT_NICE` | `5` | Nice value of a running import" in settings_table()
    assert "| `IMPORTER_MAX_UPLOAD_BYTES` | `52428800` (50 MiB) |" in settings_table()
    assert "| `IMPORTER_REIMPORT_CRON` | unset |" in settings_table()


def test_docs_configuration_holds_the_table_settings_py_makes() -> None:
    text = DOCS_FILE.read_text(encoding="utf-8")

    assert text == docs_with_table(text), (
        f"docs/configuration.md's table differs from settings.py; write it again with `{REGENERATE}`"
    )
