"""The settings: API keys with labels, and settings that are not valid said in a sentence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.main import _app_or_exit
from cli.main import app
from settings import ApiKey, SettingsError, get_settings

LONG = "k" * 16
SHORT_KEY_REFUSED = (
    "IMPORTER_API_KEYS: key 2 has 2 characters; an API key needs at least 16 (make one with"
    " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
)


def settings_with(monkeypatch: pytest.MonkeyPatch, keys: str) -> None:
    monkeypatch.setenv("IMPORTER_API_KEYS", keys)
    get_settings.cache_clear()


def test_keys_carry_their_label_or_a_short_hash_of_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings_with(monkeypatch, f" ci : {LONG}1 , ,{LONG}2,ci:{LONG}3")
    hashed = "key-" + hashlib.sha256(f"{LONG}2".encode()).hexdigest()[:6]
    assert get_settings().accepted_api_keys() == (
        ApiKey("ci", f"{LONG}1"),
        ApiKey(hashed, f"{LONG}2"),
        ApiKey("ci", f"{LONG}3"),  # a new key under the old one's label, while rotating
    )


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        (f"{LONG},zq", SHORT_KEY_REFUSED),
        (f"{LONG},ci:zq", SHORT_KEY_REFUSED),
        (
            f"a b:{LONG}",
            "IMPORTER_API_KEYS: the label of key 1 may hold letters, digits, '.', '_' and '-'"
            " (at most 40), then ':' and the key",
        ),
    ],
)
def test_a_short_key_or_a_bad_label_is_refused_naming_it_by_position_only(
    monkeypatch: pytest.MonkeyPatch, keys: str, said: str
) -> None:
    settings_with(monkeypatch, keys)
    with pytest.raises(SettingsError) as caught:
        get_settings()
    assert str(caught.value) == said
    assert "zq" not in str(caught.value) and LONG not in str(caught.value)


def test_the_command_line_and_the_service_stop_at_a_short_key_with_the_sentence(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_with(monkeypatch, f"{LONG},zq")

    result = CliRunner().invoke(app, ["jobs"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {SHORT_KEY_REFUSED}"
    assert "Traceback" not in result.output

    with pytest.raises(SystemExit) as stopped:
        _app_or_exit()
    assert stopped.value.code == f"error: {SHORT_KEY_REFUSED}"


def test_a_name_prefix_names_the_work_pool_and_deployments_this_importer_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestration.names import IMPORT_DEPLOYMENT, WORK_POOL, prefixed
    from orchestration.trigger import PrefectTrigger

    monkeypatch.delenv("IMPORTER_NAME_PREFIX", raising=False)
    get_settings.cache_clear()
    assert (prefixed(WORK_POOL), PrefectTrigger().deployment) == (
        "importer",
        "import-items/import-items",
    )
    monkeypatch.setenv("IMPORTER_NAME_PREFIX", "staging-")
    get_settings.cache_clear()
    trigger = PrefectTrigger()
    assert prefixed(WORK_POOL) == "staging-importer"
    assert trigger.deployment == f"import-items/staging-{IMPORT_DEPLOYMENT}"
    assert trigger.undo_deployment == "undo-import/staging-undo-import"


@pytest.mark.parametrize("prefix", ["has space", "-leading", "x" * 41, "a/b"])
def test_a_name_prefix_prefect_would_not_take_is_refused(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    monkeypatch.setenv("IMPORTER_NAME_PREFIX", prefix)
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="IMPORTER_NAME_PREFIX"):
        get_settings()
