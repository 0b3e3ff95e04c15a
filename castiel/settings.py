"""Every environment variable Castiel reads, named once, typed, with its default.

Nothing else in the code base touches ``os.environ``. A backend is chosen by which of these are set
(``COSMOS_ENDPOINT``, ``ServiceBusConnection``, ``KEY_VAULT_URL``, ``REDIS_URL``), never by code.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from castiel.errors import ConfigError


class Settings(BaseSettings):
    """The whole configuration of one Castiel process."""

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
    )

    cosmos_endpoint: str | None = Field(default=None, validation_alias="COSMOS_ENDPOINT")
    cosmos_key: str | None = Field(default=None, validation_alias="COSMOS_KEY", repr=False)
    cosmos_database: str = Field(default="castiel", validation_alias="COSMOS_DATABASE", min_length=1)

    service_bus_connection: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ServiceBusConnection", "SERVICE_BUS_CONNECTION_STRING"),
        repr=False,
    )
    service_bus_namespace: str | None = Field(
        default=None,
        validation_alias="ServiceBusConnection__fullyQualifiedNamespace",
        description="Identity-based connection: the namespace host, used with a managed identity.",
    )
    service_bus_queue: str = Field(default="sync-inbound", validation_alias="SERVICE_BUS_QUEUE", min_length=1)
    service_bus_queue_outbound: str = Field(
        default="sync-outbound", validation_alias="SERVICE_BUS_QUEUE_OUTBOUND", min_length=1
    )

    key_vault_url: str | None = Field(default=None, validation_alias="KEY_VAULT_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL", repr=False)
    redis_auth: Literal["url", "entra_id"] = Field(
        default="url",
        validation_alias="REDIS_AUTH",
        description="How Castiel signs in to REDIS_URL: url (whatever the URL carries: a password, or nothing) or "
        "entra_id (a Microsoft Entra token of the managed identity, refreshed before it expires: Azure Managed "
        "Redis, which takes no access key; REDIS_URL then names the cache as rediss://<name>.<region>"
        ".redis.azure.net:10000).",
    )

    sync_batch_size: int = Field(default=100, validation_alias="SYNC_BATCH_SIZE", ge=1, le=10_000)
    sync_max_retries: int = Field(default=3, validation_alias="SYNC_MAX_RETRIES", ge=0, le=100)
    sync_stuck_timeout_minutes: int = Field(
        default=60,
        validation_alias="SYNC_STUCK_TIMEOUT_MINUTES",
        ge=1,
        description="A task queued or running longer than this is assumed lost and re-pended.",
    )
    sync_tombstone_retention_days: int = Field(
        default=30,
        validation_alias="SYNC_TOMBSTONE_RETENTION_DAYS",
        ge=1,
        description="How long a deleted record's tombstones (its shard and external-id link) are kept, then expire.",
    )
    sync_progress_interval_seconds: float = Field(
        default=5.0,
        validation_alias="SYNC_PROGRESS_INTERVAL_SECONDS",
        ge=0,
        description="A running sync rewrites its sync-results document at each new phase and at most this often "
        "in between (0: after every page).",
    )
    sync_create_confirm_seconds: float = Field(
        default=120.0,
        validation_alias="SYNC_CREATE_CONFIRM_SECONDS",
        gt=0,
        description="A create pushed to a provider whose outcome is unknown (a 5xx, a timeout, a crash) is sent again "
        "only after this long without the provider's own report of it (its webhook) showing up.",
    )
    google_certs_url: str = Field(
        default="https://www.googleapis.com/oauth2/v3/certs",
        validation_alias="GOOGLE_CERTS_URL",
        description="Where Google Pub/Sub push tokens' signing keys (a JWKS) are fetched; castiel serve --sandbox "
        "points it at the sandbox's stand-in.",
    )
    token_expiry_threshold_minutes: int = Field(default=420, validation_alias="TOKEN_EXPIRY_THRESHOLD_MINUTES", ge=1)
    token_refresh_concurrency: int = Field(
        default=8,
        validation_alias="TOKEN_REFRESH_CONCURRENCY",
        ge=1,
        le=100,
        description="How many credentials the token refresher refreshes at once (each is one token request).",
    )
    max_delivery_count: int = Field(
        default=10,
        validation_alias="SERVICE_BUS_MAX_DELIVERY_COUNT",
        ge=1,
        description="The queue's max delivery count (Service Bus default 10); the embedded queue obeys it.",
    )
    lock_duration_seconds: float = Field(
        default=60.0,
        validation_alias="SERVICE_BUS_LOCK_DURATION_SECONDS",
        gt=0,
        le=300,
        description="The queue's peek-lock duration (Service Bus default 60 s, set on the queue); the embedded queue "
        "obeys it. A worker that dies leaves its message locked this long before it is redelivered.",
    )

    rate_limit_overrides: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias="RATE_LIMIT_OVERRIDES",
        description="JSON: per-tenant and per-connection limits that replace the defaults of DESIGN §5.",
    )
    rate_limit_expected_instances: int = Field(
        default=1,
        validation_alias="RATE_LIMIT_EXPECTED_INSTANCES",
        ge=1,
        description="Instances sharing a limit; the local fallback window (Redis down) divides limits by it.",
    )

    applicationinsights_connection_string: str | None = Field(
        default=None,
        validation_alias="APPLICATIONINSIGHTS_CONNECTION_STRING",
        repr=False,
        description="Where traces, metrics and logs go (App Insights); unset, no telemetry is exported.",
    )

    data_dir: Path = Field(default=Path(".castiel"), validation_alias="CASTIEL_DATA_DIR")
    shutdown_grace_seconds: float = Field(
        default=30.0,
        validation_alias="CASTIEL_SHUTDOWN_GRACE_SECONDS",
        ge=0,
        description="castiel serve: how long a stop signal waits for invocations in flight before cutting them.",
    )

    @field_validator("cosmos_endpoint", "key_vault_url", "google_certs_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _entra_needs_tls(self) -> Settings:
        if self.redis_auth == "entra_id" and not (self.redis_url or "").startswith("rediss://"):
            raise ValueError("REDIS_AUTH=entra_id needs REDIS_URL of the cache over TLS: rediss://<host>:10000")
        return self

    @property
    def uses_cosmos(self) -> bool:
        """True when documents live in Cosmos DB rather than the embedded SQLite store."""
        return self.cosmos_endpoint is not None

    @property
    def uses_service_bus(self) -> bool:
        """True when queues are Azure Service Bus rather than the embedded SQLite queue."""
        return self.service_bus_connection is not None or self.service_bus_namespace is not None

    @property
    def uses_key_vault(self) -> bool:
        """True when secrets live in Key Vault rather than the local file store."""
        return self.key_vault_url is not None


BACKEND_SELECTORS = frozenset(
    {
        "COSMOS_ENDPOINT",
        "COSMOS_KEY",
        "SERVICEBUSCONNECTION",
        "SERVICE_BUS_CONNECTION_STRING",
        "SERVICEBUSCONNECTION__FULLYQUALIFIEDNAMESPACE",
        "KEY_VAULT_URL",
        "REDIS_URL",
    }
)
"""The variables (upper-cased; names are case-insensitive) whose presence moves a backend off the embedded default."""


def load_settings() -> Settings:
    """Read the environment once; an invalid value raises ``ConfigError`` naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["msg"]) for err in exc.errors(include_url=False))
        raise ConfigError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:
        # Raised before validation when a complex value (a JSON setting) does not parse.
        field = next((name for name in Settings.model_fields if f'"{name}"' in str(exc)), "?")
        raise ConfigError(f"invalid configuration: {_variable_name((field,))}: not valid JSON") from None


_chosen: Settings | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings: read from the environment on first use, unless ``use_settings`` chose them."""
    return _chosen if _chosen is not None else load_settings()


def use_settings(settings: Settings) -> None:
    """Make ``settings`` the process-wide settings (``castiel serve --sandbox`` points Google's signing keys at the
    sandbox it serves); the runtime built afterwards uses them."""
    global _chosen
    _chosen = settings
    get_settings.cache_clear()


def app_setting(name: str) -> str | None:
    """The app setting ``name`` as a ``%name%`` binding expression resolves, or None when there is none.

    The Functions host resolves these from its app settings, the environment, comparing names case-insensitively.
    The dev host does the same and then falls back to the default ``Settings`` declares for that variable, so an
    unconfigured ``castiel serve`` listens on the very queue names the runtime sends to.
    """
    wanted = name.casefold()
    for key, value in os.environ.items():
        if key.casefold() == wanted:
            return value
    for field in Settings.model_fields:
        if wanted in (alias.casefold() for alias in _aliases(field)):
            default = Settings.model_fields[field].default
            return default if isinstance(default, str) else None
    return None


def _aliases(field: str) -> tuple[str, ...]:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, str):
        return (alias,)
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (field,)


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    # A rule across several variables (a model validator) has no location: its message names them.
    return f"{_variable_name(loc)}: {message}" if loc else message.removeprefix("Value error, ")


def _variable_name(loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    return " / ".join(_aliases(field)) if field in Settings.model_fields else field
