"""The limits of DESIGN §5 and their overrides from RATE_LIMIT_OVERRIDES."""

from __future__ import annotations

from typing import Any

import pytest

from castiel.errors import ConfigError
from castiel.ratelimit.policy import QUEUED_OPERATIONS, LevelLimits, Limit, LimitedOperation, RateLimitPolicy
from castiel.settings import Settings


@pytest.mark.parametrize(
    ("provider", "operation", "expected"),
    [
        ("salesforce", "fetch", LevelLimits(Limit(300), Limit(200), Limit(5000))),
        ("github", "update", LevelLimits(Limit(360), Limit(150), Limit(5000))),
        ("google", "create", LevelLimits(Limit(240), Limit(100), Limit(5000))),
        ("notion", "delete", LevelLimits(Limit(180), Limit(50), Limit(5000))),
        ("slack", "fetch", LevelLimits(Limit(60), Limit(50), Limit(5000))),  # conversations.history: Tier 3
        ("GitHub", "fetch", LevelLimits(Limit(360), Limit(200), Limit(5000))),
        ("standard", "fetch", LevelLimits(Limit(60), Limit(200), Limit(5000))),
    ],
)
def test_defaults_are_those_of_the_design(provider: str, operation: LimitedOperation, expected: LevelLimits) -> None:
    limits = RateLimitPolicy().limits(tenant_id="t", connection_id="c", provider=provider, operation=operation)
    assert limits == expected


OVERRIDES: dict[str, Any] = {
    "defaults": {"tenant": 8000, "integrations": {"github": 600}, "operations": {"delete": 30}},
    "tenants": {
        "big": {
            "tenant": 10000,
            "integrations": {"github": 900},
            "operations": {"delete": {"limit": 5, "windowSeconds": 10}},
        }
    },
    "connections": {"c-slow": {"integration": 12, "operations": {"delete": 2}}},
}


@pytest.mark.parametrize(
    ("tenant", "connection", "provider", "operation", "expected"),
    [
        # nothing specific: the configured defaults, then the built-in ones
        ("small", "c1", "github", "delete", LevelLimits(Limit(600), Limit(30), Limit(8000))),
        ("small", "c1", "slack", "fetch", LevelLimits(Limit(60), Limit(50), Limit(8000))),
        # the tenant's entries beat the defaults
        ("big", "c1", "github", "delete", LevelLimits(Limit(900), Limit(5, 10.0), Limit(10000))),
        # the connection's entries beat the tenant's
        ("big", "c-slow", "github", "delete", LevelLimits(Limit(12), Limit(2), Limit(10000))),
        ("big", "c-slow", "github", "fetch", LevelLimits(Limit(12), Limit(200), Limit(10000))),
    ],
)
def test_the_most_specific_override_wins(
    tenant: str, connection: str, provider: str, operation: LimitedOperation, expected: LevelLimits
) -> None:
    policy = RateLimitPolicy(OVERRIDES)
    assert policy.limits(tenant_id=tenant, connection_id=connection, provider=provider, operation=operation) == expected


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"tenant": {"t": {}}}, "tenant"),
        ({"tenants": {"t": {"tenant": 0}}}, "tenants.t.tenant"),
        ({"tenants": {"t": {"operations": {"purge": 5}}}}, "tenants.t.operations.purge"),
        ({"connections": {"c": {"integration": {"limit": 5, "windowSeconds": 0}}}}, "connections.c.integration"),
        ({"connections": {"c": {"integrations": 5}}}, "connections.c.integrations"),
    ],
)
def test_a_bad_override_fails_naming_the_variable_and_the_field(overrides: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError, match="RATE_LIMIT_OVERRIDES") as raised:
        RateLimitPolicy(overrides)
    assert names in str(raised.value)


def test_overrides_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_OVERRIDES", '{"connections": {"c": {"integration": 7}}}')
    policy = RateLimitPolicy.from_settings(Settings())
    limits = policy.limits(tenant_id="t", connection_id="c", provider="notion", operation="fetch")
    assert limits.integration == Limit(7)


@pytest.mark.parametrize("bad", [0, -1])
def test_a_limit_needs_a_positive_count(bad: int) -> None:
    with pytest.raises(ValueError, match="count >= 1"):
        Limit(bad)


def test_deletes_alone_are_refused_rather_than_queued() -> None:
    assert set(QUEUED_OPERATIONS) == {"fetch", "create", "update"}
