"""The one place that reads the environment: every `IMPORTER_*` setting of the service."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.enums import ImportMode
from itemsheet.sheet.source_urls import form_refusal

MIB = 1024 * 1024
# Rows per batch: on SQLite an upload waits for the batch being written (about 25 ms of
# 10,000 rows); PostgreSQL makes no upload wait, and a batch of 20,000 wrote 1M rows in
# 3.85 s against 4.26 s in batches of 10,000 (medians of three alternated runs).
BATCH = 20_000
SQLITE_BATCH = 10_000
# A key is all a client needs to act; short ones are guessed.
MIN_KEY_CHARS = 16
_LABEL = re.compile(r"[A-Za-z0-9._-]{1,40}")


@dataclass(frozen=True)
class ApiKey:
    """One accepted API key and the label jobs record for it (never the key's characters)."""

    label: str
    key: str = field(repr=False)


def parse_api_keys(text: str | None) -> tuple[ApiKey, ...]:
    """`label:key,key,...` as keys with labels; a key without one is labelled by a short
    hash of it (`key-1a2b3c`). ValueError names a bad entry by its position only: what it
    holds may be a secret."""
    entries = [entry.strip() for entry in (text or "").split(",") if entry.strip()]
    keys: list[ApiKey] = []
    for number, entry in enumerate(entries, start=1):
        label, colon, key = (part.strip() for part in entry.partition(":"))
        if not colon:
            label, key = "key-" + hashlib.sha256(entry.encode()).hexdigest()[:6], entry
        elif not _LABEL.fullmatch(label):
            raise ValueError(
                f"the label of key {number} may hold letters, digits, '.', '_' and '-' (at most"
                " 40), then ':' and the key"
            )
        if len(key) < MIN_KEY_CHARS:
            raise ValueError(
                f"key {number} has {len(key)} characters; an API key needs at least"
                f" {MIN_KEY_CHARS} (make one with"
                " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        keys.append(ApiKey(label, key))
    return tuple(keys)


class Settings(BaseSettings):
    """Configuration read from `IMPORTER_*` environment variables (or a `.env` file)."""

    model_config = SettingsConfigDict(env_prefix="IMPORTER_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"),
        description="Where the embedded database, stored files and work files live (and"
        " `importer up`'s Prefect home); created 0700 with its files 0600 whatever the umask,"
        " so no other local user can read them. A folder that already exists keeps its mode:"
        " `chmod -R go= var` tightens one made by an earlier version.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (`postgresql+psycopg://...` for production); default: a"
        " SQLite file `importer.db` under the data dir.",
    )
    storage_url: str | None = Field(
        default=None,
        description="Where uploaded files are kept: a path or any fsspec URL (a local folder is"
        " created 0700, its files 0600); default: `files/` in the data dir.",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Rows per committed batch (one progress commit each); default 20,000 on"
        " PostgreSQL and 10,000 on SQLite, whose one write lock an upload waits for while a"
        " batch is written.",
    )

    # Limits on what a file may be or expand to.
    max_upload_bytes: int = Field(
        default=50 * MIB, ge=1, description="Largest accepted file, in bytes."
    )
    max_uncompressed_bytes: int = Field(
        default=2048 * MIB, ge=1, description="Largest unpacked size of a zip package, in bytes."
    )
    max_compression_ratio: int = Field(
        default=200, ge=1, description="Largest unpack ratio of a part over 8 MiB."
    )
    max_zip_entries: int = Field(default=10_000, ge=1, description="Most parts in a zip package.")
    max_cells: int = Field(
        default=20_000_000, ge=1, description="Most cells in a sheet (and shared strings)."
    )
    parse_timeout_s: float = Field(
        default=300.0, gt=0, description="Longest a parse may run, in seconds."
    )
    parse_memory_mib: int = Field(
        default=4096,
        ge=64,
        description="Most memory a parse may use, in MiB (resident size, watched; the parse"
        " child's address space is capped at this plus 4 GiB as a backstop).",
    )
    max_row_errors: int = Field(
        default=10_000,
        ge=1,
        description="Most row errors a job keeps, the first ones by row; `failed` still"
        " counts every failing row, and the job warns how many errors were kept.",
    )

    api_keys: str | None = Field(
        default=None,
        description="Comma-separated API keys, each `label:key` or a key alone (labelled by a"
        " short hash of it), at least 16 characters; when set, the API (all but health) needs"
        " `Authorization: Bearer KEY`, and jobs record the key's label.",
    )

    # Followers of a job's progress (event streams and WebSockets).
    max_event_streams: int = Field(
        default=200,
        ge=1,
        description="Event streams and WebSockets open at once; one more is answered 429.",
    )
    max_streams_per_client: int = Field(
        default=8,
        ge=1,
        description="Event streams and WebSockets one client (an API key's label, or an"
        " address when keys are not set) may have open at once; one more is answered 429.",
    )
    event_stream_max_s: float = Field(
        default=3600.0,
        gt=0,
        description="Longest life of one event stream or WebSocket; the client then reconnects.",
    )

    prefect_ui_url: str | None = Field(
        default=None,
        description="Base URL of the Prefect UI for flow run links; default: Prefect's own"
        " PREFECT_UI_URL, or one derived from PREFECT_API_URL.",
    )

    public_url: str | None = Field(
        default=None,
        description="Base URL at which people and other systems reach the API and the web"
        " page, for the links in Prefect events and artifacts; default: http://HOST:PORT.",
    )

    notify_webhook_url: str | None = Field(
        default=None,
        description="Webhook the automations of `importer automations apply` post to;"
        " unset: they are created disabled.",
    )

    allowed_hosts: str = Field(
        default="127.0.0.1,localhost,::1",
        description="Comma-separated host names the API answers to (besides IMPORTER_HOST);"
        " `.example.com` allows a domain and its subdomains, `*` any name. Others get 400"
        " (DNS rebinding).",
    )
    allowed_origins: str = Field(
        default="",
        description="Comma-separated origins (`https://app.example.com`) whose pages may"
        " upload, cancel or retry through a browser, besides the service's own page.",
    )

    # The local stack (`importer up`) and workers (`importer worker`).
    host: str = Field(
        default="127.0.0.1", description="Address `importer up` serves the API and web page on."
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the API and web page.")
    prefect_port: int = Field(
        default=4200, ge=1, le=65535, description="Port of the Prefect server `importer up` starts."
    )
    worker_limit: int = Field(default=2, ge=1, description="Imports one worker runs at once.")
    name_prefix: str = Field(
        default="",
        max_length=40,
        pattern=r"^([A-Za-z0-9][A-Za-z0-9_-]*)?$",
        description="Put before the names of the work pool and the deployments on the Prefect"
        " server (`<prefix>importer`, `import-items/<prefix>import-items`): importers with"
        " different prefixes share one Prefect server without taking each other's runs.",
    )
    reimport_source: str | None = Field(
        default=None,
        description="Path or fsspec URL (of a file system or object store; a web address is"
        " refused at start-up) reimported on a schedule.",
    )
    reimport_cron: str | None = Field(
        default=None, description="Cron schedule (UTC) of the reimport; off when unset."
    )
    reimport_sheet: str | None = Field(default=None, description="Sheet of the reimported file.")
    reimport_mode: ImportMode = Field(
        default=ImportMode.UPSERT,
        description="Mode of the scheduled reimport: upsert, create_only or update_only (a"
        " supplier's list of more items than the shop keeps).",
    )
    reimport_allowed: str = Field(
        default="",
        description="Comma-separated path or URL prefixes a `reimport-items` run may read"
        " (besides IMPORTER_REIMPORT_SOURCE itself), not web addresses; any other source is"
        " refused.",
    )

    @field_validator("api_keys")
    @classmethod
    def _usable_keys(cls, value: str | None) -> str | None:
        parse_api_keys(value)
        return value

    @field_validator("reimport_source")
    @classmethod
    def _readable_source(cls, value: str | None) -> str | None:
        if value and (refused := form_refusal(value.strip())):
            raise ValueError(f"'{value.strip()}' {refused}")
        return value

    @field_validator("reimport_allowed")
    @classmethod
    def _readable_prefixes(cls, value: str) -> str:
        for prefix in (p.strip() for p in value.split(",")):
            if prefix and (refused := form_refusal(prefix)):
                raise ValueError(f"'{prefix}' {refused}")
        return value

    # Crashes and restarts: a running import beats; one whose beat stops is resumed.
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Runs an interrupted import gets (first run and automatic resumes) before"
        " it is failed.",
    )
    heartbeat_s: float = Field(
        default=5.0, gt=0, description="How often a running import records that it is alive."
    )
    stale_after_s: float = Field(
        default=60.0,
        gt=0,
        description="Silence after which a `processing` job is taken as dead and resumed by a"
        " worker's reconciler.",
    )
    reconcile_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="How often each worker looks for dead imports to resume (and for jobs"
        " still waiting for a run).",
    )
    review_ttl_h: float = Field(
        default=24.0,
        gt=0,
        description="Hours an import started with review waits for a person to confirm"
        " it before it is cancelled (nothing written).",
    )
    review_hold_s: float = Field(
        default=120.0,
        ge=0,
        description="Seconds a run that has previewed an import waits in its process for"
        " the review's answer (paused in Prefect, holding its worker slot), so a person who"
        " answers at once does not wait for a new run; then it suspends. It suspends sooner"
        " when another import has waited 2 s for a worker slot. 0: it suspends at once.",
    )
    guard: bool = Field(
        default=True,
        description="Check every import against the guardrails before its first write (an"
        " import that would do something unusual waits for a person); off: none is"
        " checked.",
    )
    guard_price_share: float = Field(
        default=20.0,
        ge=0,
        le=100,
        description="Guardrail: an import waits when more than this percentage of the"
        " stored items' changed prices would change by more than"
        " IMPORTER_GUARD_PRICE_CHANGE.",
    )
    guard_price_change: float = Field(
        default=50.0,
        gt=0,
        lt=100,
        description="Guardrail: the percentage by which a price change counts as large"
        " (either way), for IMPORTER_GUARD_PRICE_SHARE.",
    )
    guard_price_factor: float = Field(
        default=10.0,
        gt=1,
        description="Guardrail: an import waits when any price would change by this factor"
        " or more, either way (cents read as euros).",
    )
    guard_zero_share: float = Field(
        default=20.0,
        ge=0,
        le=100,
        description="Guardrail: an import waits when more than this percentage of the"
        " stored items its sheet names would get quantity 0 where it was positive.",
    )
    guard_partial_share: float = Field(
        default=80.0,
        ge=0,
        le=100,
        description="Guardrail: an import waits when a sheet of at most"
        " IMPORTER_GUARD_PARTIAL_FIELDS fields would update more than this percentage of"
        " all stored items (the wrong supplier's list).",
    )
    guard_min_items: int = Field(
        default=10,
        ge=1,
        description="Guardrails: a share (of changed prices, of the items a sheet names, of"
        " all stored items) is judged only on at least this many items, so a sheet that"
        " changes one or two prices is no share of anything; the price factor rule judges"
        " every price.",
    )
    guard_partial_fields: int = Field(
        default=2,
        ge=0,
        description="Guardrail: a sheet with at most this many fields besides the SKU is"
        " partial, for IMPORTER_GUARD_PARTIAL_SHARE.",
    )
    writer_wait_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long an import waits for another import to finish writing items"
        " before it fails, naming that import.",
    )

    # Starting runs: uploads never wait for Prefect; a job waits for its run instead.
    dispatch_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="How long a job may wait for its flow run to be created before it fails.",
    )
    dispatch_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often the API looks for jobs still waiting for a run (each upload"
        " wakes it at once).",
    )
    warm_spares: int = Field(
        default=2,
        ge=0,
        le=8,
        description=(
            "Interpreters a worker keeps ready for its next flow runs, forked from its"
            " template process (0: each run is forked when it comes)."
        ),
    )
    import_nice: int = Field(
        default=5,
        ge=0,
        le=19,
        description="Nice value of a running import (parse and writes): the API and Prefect"
        " stay at 0 and answer first; spares warm up at 10.",
    )
    worker_poll_s: float = Field(
        default=2.0,
        gt=0,
        description="How often a worker asks its work pool for runs when the importer database"
        " shows none waiting (a waiting job wakes it at once).",
    )
    # Retention: what ended imports leave behind is let go after a while.
    retention_days: int = Field(
        default=90,
        description="Days after its end that a job keeps its stored file and row errors;"
        " 0 or less keeps them for ever. The job row itself is kept.",
    )
    undo_days: int = Field(
        default=30,
        description="Days after its end that an import keeps the before-images its undo"
        " needs; after that it can no longer be undone. 0 or less keeps them for ever.",
    )
    leftover_grace_s: float = Field(
        default=3600.0,
        ge=60,
        description="Age after which an unfinished upload (`.partial`) or parse result"
        " (`.result`) counts as left over (at least 60); longer than any upload or parse"
        " takes.",
    )
    clean_up_cron: str = Field(
        default="30 3 * * *",
        description="Cron schedule (UTC) of the `clean-up` deployment (as `importer worker`"
        " registers it and `prefect.yaml` holds it); empty: no schedule.",
    )

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'importer.db').resolve()}"

    def rows_per_batch(self) -> int:
        """The batch size: the configured one, else the database's default."""
        if self.batch_size is not None:
            return self.batch_size
        return SQLITE_BATCH if self.resolved_database_url().startswith("sqlite") else BATCH

    def public_base_url(self) -> str:
        """Where the API and the web page are reached from outside, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def accepted_api_keys(self) -> tuple[ApiKey, ...]:
        """The API keys with their labels (blank entries dropped); empty when the API is open."""
        return parse_api_keys(self.api_keys)

    def reimport_prefixes(self) -> tuple[str, ...]:
        """Where reimports may read from: the configured prefixes and the scheduled source."""
        prefixes = [p.strip() for p in self.reimport_allowed.split(",") if p.strip()]
        if self.reimport_source:
            prefixes.append(self.reimport_source)
        return tuple(prefixes)

    def allowed_host_names(self) -> tuple[str, ...]:
        """The host names the API answers to: the configured ones and the one it listens on."""
        names = [n.strip().lower() for n in self.allowed_hosts.split(",") if n.strip()]
        if self.host not in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
            names.append(self.host.lower())
        # IPv6 literals arrive in brackets in `Host`.
        names += [f"[{n}]" for n in names if ":" in n and not n.startswith("[")]
        return tuple(names)

    def allowed_origin_urls(self) -> tuple[str, ...]:
        """Origins, besides the service's own, whose pages may change things."""
        return tuple(
            o.strip().rstrip("/").lower() for o in self.allowed_origins.split(",") if o.strip()
        )

    def resolved_storage_url(self) -> str:
        """The storage location, defaulting to `files/` under the data dir."""
        return self.storage_url or str((self.data_dir / "files").resolve())

    @property
    def work_dir(self) -> Path:
        """Scratch space for parsed sheets between the flow's tasks."""
        return (self.data_dir / "work").resolve()


# The data dir holds the uploaded catalogues, the database and the rows being imported: no
# other local user may read them, whatever umask the process was started with (022 leaves
# new files readable by everyone). Folders and files are created with these modes.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: Path) -> Path:
    """Create `path` and each missing parent 0700; a folder that exists keeps its mode."""
    for folder in reversed([path, *path.parents]):
        if folder.is_dir():
            continue
        # `mkdir(parents=True)` would give the parents the umask's mode, not ours.
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(PRIVATE_DIR)
    return path


def private_opener(path: str, flags: int) -> int:
    """For `open(..., opener=private_opener)`: a file it creates is 0600, whatever the umask."""
    return os.open(path, flags, PRIVATE_FILE)


class SettingsError(ValueError):
    """Settings that are not valid, said in one line that names each variable."""

    @classmethod
    def of(cls, error: ValidationError) -> SettingsError:
        """Pydantic's errors as sentences, without the values (an API key must not be
        printed)."""
        said = []
        for item in error.errors():
            name = "IMPORTER_" + "_".join(str(part) for part in item["loc"]).upper()
            own = (item.get("ctx") or {}).get("error")
            message = str(own) if isinstance(own, ValueError) else item["msg"]
            said.append(f"{name}: {message[:1].lower()}{message[1:]}")
        return cls("; ".join(said))


@lru_cache
def get_settings() -> Settings:
    """The process's settings; tests reset them with `get_settings.cache_clear()`.

    Raises `SettingsError`: the command line and the service stop with its sentence.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError.of(exc) from None


# Defaults for Prefect settings the user has not set. Prefect's own server imports take
# well over 20 s on a small machine the first time, which is Prefect's default startup
# timeout for its temporary (ephemeral) server; and this service never phones home.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def apply_prefect_defaults() -> None:
    """Fill in `PREFECT_DEFAULTS` for this process and its children, never overriding."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
