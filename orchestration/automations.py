"""`importer automations apply`: Prefect automations that act on import events, from a file.

`automations.toml` beside this module declares a notification block and one automation per
outcome; applying makes the connected Prefect server match it. Everything is found by name,
so applying again updates in place and never duplicates. The webhook's URL comes from
`IMPORTER_NOTIFY_WEBHOOK_URL`; without it every automation is created disabled, so nothing
is posted until an operator says where to.
"""

from __future__ import annotations

import tomllib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import PrefectClient, get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.settings import PREFECT_API_URL
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestration.events import EVENT_OF, RESOURCE_PREFIX

SPEC_FILE = Path(__file__).with_name("automations.toml")
# A block needs a URL; this one never resolves (`.invalid` is reserved), and the
# automations that would use it are disabled.
UNCONFIGURED_URL = "http://set-importer-notify-webhook-url.invalid/"


class AutomationsError(Exception):
    """The file cannot be applied; `str()` says why in one line."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BlockSpec(_Spec):
    """The notification block the automations post through."""

    name: str = Field(min_length=1)


class NotificationSpec(_Spec):
    """The notification's subject and body, as Jinja templates Prefect renders."""

    subject: str
    body: str


class AutomationSpec(_Spec):
    """One automation: when `event` is seen (on a job matching `match`), notify."""

    name: str = Field(min_length=1)
    event: str
    enabled: bool = True
    description: str = ""
    match: dict[str, str] = Field(default_factory=dict)


class AutomationsFile(_Spec):
    """The whole declarative file."""

    block: BlockSpec
    notification: NotificationSpec
    automation: list[AutomationSpec]


@dataclass(frozen=True)
class Applied:
    """What one apply left in Prefect: per automation, its name, event, whether it is
    enabled and whether it was created (else updated)."""

    block: str
    webhook: str | None
    automations: list[tuple[str, str, bool, bool]]


def load_spec(path: Path = SPEC_FILE) -> AutomationsFile:
    """The file, checked: every automation names an event the importer sends."""
    try:
        spec = AutomationsFile.model_validate(tomllib.loads(path.read_text()))
    except OSError as exc:
        raise AutomationsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise AutomationsError(f"{path.name} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise AutomationsError(f"{path.name} is not valid: {where}: {first['msg']}") from exc
    known = set(EVENT_OF.values())
    for automation in spec.automation:
        if automation.event not in known:
            raise AutomationsError(
                f"automation '{automation.name}' waits for '{automation.event}', which the"
                f" importer never sends; use one of {', '.join(sorted(known))}"
            )
    return spec


def build_automation(
    spec: AutomationSpec, notification: NotificationSpec, *, block_id: uuid.UUID, enabled: bool
) -> AutomationCore:
    """The Prefect automation for one entry: each matching event sends one notification."""
    trigger = EventTrigger(
        expect={spec.event},
        match={"prefect.resource.id": f"{RESOURCE_PREFIX}*", **spec.match},
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(0),
    )
    action = SendNotification(
        block_document_id=block_id, subject=notification.subject, body=notification.body
    )
    return AutomationCore(
        name=spec.name,
        description=spec.description,
        enabled=enabled,
        tags=["importer"],
        trigger=trigger,
        actions=[action],
    )


async def _save_block(client: PrefectClient, spec: BlockSpec, url: str | None) -> uuid.UUID:
    block = CustomWebhookNotificationBlock(
        name=spec.name,
        url=url or UNCONFIGURED_URL,
        # The rendered body is the request's whole content: one JSON object.
        form_data="{{body}}",
        headers={"Content-Type": "application/json"},
    )
    return await block.asave(spec.name, overwrite=True, client=client)


async def _upsert(client: PrefectClient, automation: AutomationCore) -> bool:
    """Create the automation, or update the one of the same name; True when created."""
    existing = await client.read_automations_by_name(automation.name)
    if not existing:
        await client.create_automation(automation)
        return True
    await client.update_automation(existing[0].id, automation)
    for extra in existing[1:]:  # duplicates made by hand in the UI would notify twice
        await client.delete_automation(extra.id)
    return False


async def apply_automations(spec: AutomationsFile, *, webhook_url: str | None) -> Applied:
    """Make the connected Prefect server hold the block and automations of `spec`."""
    done: list[tuple[str, str, bool, bool]] = []
    try:
        async with get_client() as client:
            block_id = await _save_block(client, spec.block, webhook_url)
            for entry in spec.automation:
                enabled = entry.enabled and bool(webhook_url)
                automation = build_automation(
                    entry, spec.notification, block_id=block_id, enabled=enabled
                )
                created = await _upsert(client, automation)
                done.append((entry.name, entry.event, enabled, created))
    except httpx.HTTPStatusError as exc:
        detail = " ".join(exc.response.text.split())[:300]
        raise AutomationsError(
            f"the Prefect server refused it ({exc.response.status_code}): {detail}"
        ) from exc
    except (httpx.TransportError, OSError) as exc:
        raise AutomationsError(
            f"the Prefect API at {PREFECT_API_URL.value()} is not reachable"
            f" ({type(exc).__name__}); start it with `importer up` or set PREFECT_API_URL"
        ) from exc
    return Applied(spec.block.name, webhook_url, done)
