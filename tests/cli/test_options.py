"""Options the `importer` command refuses before anything runs, in one sentence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from settings import get_settings
from tests.contract.workbooks import write_xlsx


def test_a_map_option_naming_a_header_over_255_characters_is_a_usage_error(
    importer_env: Path, tmp_path: Path
) -> None:
    book = write_xlsx(tmp_path / "x.xlsx", [["SKU", "Name"], ["A-1", "Apple"]])

    result = CliRunner().invoke(app, ["import", str(book), "--map", "x" * 300 + "=sku"])

    assert result.exit_code == 2
    said = re.sub(r"[│╭╮╰╯─\s]+", " ", result.output)
    assert "the mapping names a header of 300 characters" in said


def test_a_setting_that_is_not_valid_stops_the_command_with_a_sentence_not_a_traceback(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_REIMPORT_SOURCE", "https://files.example.com/feed.xlsx")
    get_settings.cache_clear()

    result = CliRunner().invoke(app, ["jobs"])

    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: IMPORTER_REIMPORT_SOURCE: 'https://files.example.com/feed.xlsx' is a web address;"
    )
    assert isinstance(result.exception, SystemExit)  # a sentence, not an error's traceback
    assert "Traceback" not in result.output
