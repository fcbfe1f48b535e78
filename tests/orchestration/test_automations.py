"""The automations file: one example per outcome, checked before anything reaches Prefect."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from db.models import JobStatus
from orchestration.automations import AutomationsError, build_automation, load_spec
from orchestration.events import EVENT_OF

VALID = """
[block]
name = "hook"
[notification]
subject = "{{ event.event }}"
body = "{{ event.payload | tojson }}"
"""


def test_the_repositorys_file_has_one_automation_per_outcome_and_only_failures_on() -> None:
    spec = load_spec()
    outcomes = {EVENT_OF[s] for s in JobStatus if s.is_terminal}
    by_event = {a.event: a for a in spec.automation}
    assert outcomes <= set(by_event)
    assert len(by_event) == len(spec.automation)  # one each
    assert [a.event for a in spec.automation if a.enabled] == ["importer.import.failed"]


def test_an_automation_waits_for_its_event_on_import_jobs_and_notifies_through_the_block() -> None:
    spec = load_spec()
    block = uuid.uuid4()
    failed = next(a for a in spec.automation if a.event == "importer.import.failed")
    automation = build_automation(failed, spec.notification, block_id=block, enabled=True)
    trigger = automation.trigger.model_dump(mode="json")
    assert trigger["expect"] == ["importer.import.failed"]
    assert trigger["match"] == {"prefect.resource.id": "importer.job.*"}
    assert (trigger["posture"], trigger["threshold"]) == ("Reactive", 1)
    (action,) = automation.actions
    assert action.model_dump(mode="json")["block_document_id"] == str(block)
    assert "event.payload" in action.model_dump()["body"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (VALID + '[[automation]]\nname = "a"\nevent = "importer.import.exploded"\n', "never sends"),
        (VALID + '[[automation]]\nevent = "importer.import.failed"\n', "automation.0.name"),
        (VALID + "[[automation]\n", "not valid TOML"),
        (
            VALID + '[[automation]]\nname = "a"\nevent = "importer.import.failed"\nwhen = 1\n',
            "when",
        ),
    ],
)
def test_a_bad_file_is_refused_in_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "automations.toml"
    path.write_text(text)
    with pytest.raises(AutomationsError) as refused:
        load_spec(path)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_cli_says_what_is_wrong_with_a_file_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "automations.toml"
    path.write_text(VALID + '[[automation]]\nname = "a"\nevent = "importer.import.gone"\n')
    result = CliRunner().invoke(app, ["automations", "apply", "--file", str(path)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "never sends" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
