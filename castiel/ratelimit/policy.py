"""Which limits apply to a provider call: the defaults of DESIGN §5 and their overrides from configuration.

Three levels are checked for every call, each a sliding window (60 s unless configured):

* ``integration``: one connection's calls to its provider (Salesforce 300, GitHub 360, Google 240, Notion 180,
  Slack 60 per minute; any other provider 60);
* ``operation``: one connection's calls of one kind (fetch 200, update 150, create 100, delete 50 per minute);
* ``tenant``: every call of one tenant (5,000 per minute).

Some providers limit particular calls more tightly, and that is data here, not code in an adapter
(``PROVIDER_OPERATION_LIMITS``): Slack limits each Web API method by its tier, and each of our operations calls one
method (``SLACK_OPERATION_METHODS``); GitHub allows at most 80 content-creating requests a minute. Where the limit
depends on the kind of account, the connection names its *profile*: Slack's ``slackAppDistribution`` setting
(``SLACK_APP_DISTRIBUTIONS``) — ``internal`` (a tenant's own app, the default) and ``marketplace`` keep Tier 3 for
``conversations.history``; ``unlisted`` (a commercially distributed app outside the Marketplace) gets one request a
minute of at most 15 messages.

``RATE_LIMIT_OVERRIDES`` (``Settings.rate_limit_overrides``) replaces any of them. Its schema, every part optional::

    {
      "defaults":    {"tenant": 8000, "integrations": {"github": 600}, "operations": {"delete": 30}},
      "tenants":     {"<tenantId>": {"tenant": 10000, "integrations": {"salesforce": 600},
                                     "operations": {"create": 200}}},
      "connections": {"<connectionId>": {"integration": 100, "operations": {"fetch": 50}}}
    }

A limit is a count per minute, or ``{"limit": <count>, "windowSeconds": <seconds>}`` for another window. The most
specific entry wins: connection, then tenant, then ``defaults``, then the built-in defaults. Unknown fields are
rejected, so a typo fails at start-up rather than silently keeping the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from castiel.errors import ConfigError
from castiel.settings import Settings

LimitedOperation = Literal["fetch", "create", "update", "delete"]
Level = Literal["integration", "operation", "tenant"]

LEVELS: tuple[Level, ...] = get_args(Level)
"""The levels in the order they are checked and reported."""

PROVIDER_LEVEL = "provider"
"""The ``level`` of a refusal because the provider paused the connection (a 429, a quota used up): the sync should
checkpoint and stop until ``resetAt`` rather than fail."""

QUEUED_OPERATIONS: frozenset[LimitedOperation] = frozenset({"fetch", "create", "update"})
"""Over the limit these are queued (re-sent at ``retryAfterSeconds``); a delete is refused and retried instead."""

DEFAULT_WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` calls in any ``window_seconds``."""

    count: int
    window_seconds: float = DEFAULT_WINDOW_SECONDS

    def __post_init__(self) -> None:
        if self.count < 1 or self.window_seconds <= 0:
            raise ValueError(f"a limit needs count >= 1 and a positive window, not {self.count}/{self.window_seconds}s")


class LevelLimits(NamedTuple):
    """The limits of one call, in ``LEVELS`` order."""

    integration: Limit
    operation: Limit
    tenant: Limit


PROVIDER_LIMITS: Mapping[str, Limit] = {
    "salesforce": Limit(300),
    "github": Limit(360),
    "google": Limit(240),
    "notion": Limit(180),
    "slack": Limit(60),
}
OTHER_PROVIDER_LIMIT = Limit(60)
"""Providers without a default of their own get Slack's, the most cautious one."""

OPERATION_LIMITS: Mapping[LimitedOperation, Limit] = {
    "fetch": Limit(200),
    "update": Limit(150),
    "create": Limit(100),
    "delete": Limit(50),
}
TENANT_LIMIT = Limit(5000)

SLACK_TIERS: Mapping[str, Limit] = {"tier1": Limit(1), "tier2": Limit(20), "tier3": Limit(50), "tier4": Limit(100)}
"""Slack Web API tiers, per method per workspace per app (docs.slack.dev/apis/web-api/rate-limits)."""

SLACK_OPERATION_METHODS: Mapping[LimitedOperation, tuple[str, Limit]] = {
    "fetch": ("conversations.history", SLACK_TIERS["tier3"]),
    # chat.postMessage has a special tier: about one message a second per channel.
    "create": ("chat.postMessage", Limit(60)),
    "update": ("chat.update", SLACK_TIERS["tier3"]),
    "delete": ("chat.delete", SLACK_TIERS["tier3"]),
}
"""The Slack method each operation calls, with that method's limit."""


@dataclass(frozen=True, slots=True)
class SlackAppDistribution:
    """What a Slack app's distribution allows ``conversations.history``: calls and messages per call."""

    history_limit: Limit
    history_page_size: int


SLACK_APP_DISTRIBUTIONS: Mapping[str, SlackAppDistribution] = {
    "internal": SlackAppDistribution(SLACK_TIERS["tier3"], 200),
    "marketplace": SlackAppDistribution(SLACK_TIERS["tier3"], 200),
    # Since 2025-05-29, commercially distributed apps outside the Marketplace: 1 request a minute, 15 messages.
    "unlisted": SlackAppDistribution(Limit(1), 15),
}
"""``slackAppDistribution`` values (``internal`` by default)."""

DEFAULT_SLACK_APP_DISTRIBUTION = "internal"

PROVIDER_OPERATION_LIMITS: Mapping[tuple[str, str | None], Mapping[LimitedOperation, Limit]] = {
    ("github", None): {"create": Limit(80)},  # secondary limit: 80 content-creating requests a minute
    ("slack", None): {operation: limit for operation, (_, limit) in SLACK_OPERATION_METHODS.items()},
    **{
        ("slack", name): {"fetch": distribution.history_limit} for name, distribution in SLACK_APP_DISTRIBUTIONS.items()
    },
}
"""Operation limits of a provider, and of a provider's profile, tighter than ``OPERATION_LIMITS``; the profile's
entry wins over the provider's."""


def operation_default(provider: str, profile: str | None, operation: LimitedOperation) -> Limit:
    """The built-in limit of ``operation`` for a provider and profile, before any configured override."""
    for key in ((provider, profile), (provider, None)):
        found = PROVIDER_OPERATION_LIMITS.get(key, {}).get(operation)
        if found is not None:
            return found
    return OPERATION_LIMITS[operation]


# ---------------------------------------------------------------- RATE_LIMIT_OVERRIDES schema


class _Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class _WindowedLimit(_Schema):
    limit: int = Field(ge=1)
    window_seconds: float = Field(default=DEFAULT_WINDOW_SECONDS, gt=0)


_LimitValue = Annotated[int, Field(ge=1)] | _WindowedLimit


class _TenantOverride(_Schema):
    tenant: _LimitValue | None = None
    integrations: dict[str, _LimitValue] = Field(default_factory=dict)
    operations: dict[LimitedOperation, _LimitValue] = Field(default_factory=dict)


class _ConnectionOverride(_Schema):
    integration: _LimitValue | None = None
    operations: dict[LimitedOperation, _LimitValue] = Field(default_factory=dict)


class _Overrides(_Schema):
    defaults: _TenantOverride = Field(default_factory=_TenantOverride)
    tenants: dict[str, _TenantOverride] = Field(default_factory=dict)
    connections: dict[str, _ConnectionOverride] = Field(default_factory=dict)


def _limit(value: _LimitValue | None) -> Limit | None:
    if value is None:
        return None
    if isinstance(value, int):
        return Limit(value)
    return Limit(value.limit, value.window_seconds)


def _first(*candidates: _LimitValue | None, default: Limit) -> Limit:
    for candidate in candidates:
        found = _limit(candidate)
        if found is not None:
            return found
    return default


_NO_TENANT = _TenantOverride()
_NO_CONNECTION = _ConnectionOverride()


class RateLimitPolicy:
    """Resolves the three limits of a call from the defaults and the configured overrides."""

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        try:
            self._overrides = _Overrides.model_validate(overrides or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
            )
            raise ConfigError(f"RATE_LIMIT_OVERRIDES: {problems}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitPolicy:
        """The policy of ``RATE_LIMIT_OVERRIDES``."""
        return cls(settings.rate_limit_overrides)

    def limits(
        self,
        *,
        tenant_id: str,
        connection_id: str,
        provider: str,
        operation: LimitedOperation,
        profile: str | None = None,
    ) -> LevelLimits:
        """The integration, operation and tenant limits of one call, most specific override first; ``profile`` picks
        the provider's per-profile operation limits (``PROVIDER_OPERATION_LIMITS``)."""
        defaults = self._overrides.defaults
        tenant = self._overrides.tenants.get(tenant_id, _NO_TENANT)
        connection = self._overrides.connections.get(connection_id, _NO_CONNECTION)
        provider_key = provider.lower()
        return LevelLimits(
            integration=_first(
                connection.integration,
                tenant.integrations.get(provider_key),
                defaults.integrations.get(provider_key),
                default=PROVIDER_LIMITS.get(provider_key, OTHER_PROVIDER_LIMIT),
            ),
            operation=_first(
                connection.operations.get(operation),
                tenant.operations.get(operation),
                defaults.operations.get(operation),
                default=operation_default(provider_key, profile, operation),
            ),
            tenant=_first(tenant.tenant, defaults.tenant, default=TENANT_LIMIT),
        )
