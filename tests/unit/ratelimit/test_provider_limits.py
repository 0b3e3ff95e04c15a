"""Provider-specific operation limits as policy data: Slack's method tiers and app distributions, GitHub's writes."""

from __future__ import annotations

import pytest

from castiel.ratelimit.policy import (
    OPERATION_LIMITS,
    SLACK_APP_DISTRIBUTIONS,
    SLACK_OPERATION_METHODS,
    Limit,
    LimitedOperation,
    RateLimitPolicy,
)


@pytest.mark.parametrize(
    ("provider", "profile", "operation", "expected"),
    [
        ("slack", None, "fetch", Limit(50)),  # conversations.history, Tier 3
        ("slack", "internal", "fetch", Limit(50)),
        ("slack", "marketplace", "fetch", Limit(50)),
        ("slack", "unlisted", "fetch", Limit(1)),  # non-Marketplace commercial app: 1 request a minute
        ("slack", "unlisted", "create", Limit(60)),  # chat.postMessage is not touched by the distribution
        ("slack", None, "update", Limit(50)),
        ("github", None, "create", Limit(80)),
        ("github", None, "update", OPERATION_LIMITS["update"]),
        ("notion", "unlisted", "fetch", OPERATION_LIMITS["fetch"]),  # a profile means nothing to other providers
    ],
)
def test_operation_limits_follow_the_provider_and_its_profile(
    provider: str, profile: str | None, operation: LimitedOperation, expected: Limit
) -> None:
    limits = RateLimitPolicy().limits(
        tenant_id="t", connection_id="c", provider=provider, operation=operation, profile=profile
    )
    assert limits.operation == expected


def test_a_configured_override_still_wins_over_provider_data() -> None:
    policy = RateLimitPolicy({"connections": {"c": {"operations": {"fetch": 5}}}})
    limits = policy.limits(tenant_id="t", connection_id="c", provider="slack", operation="fetch", profile="unlisted")
    assert limits.operation == Limit(5)


def test_every_slack_operation_names_its_method_and_the_unlisted_page_size_is_15() -> None:
    assert {method for method, _ in SLACK_OPERATION_METHODS.values()} == {
        "conversations.history",
        "chat.postMessage",
        "chat.update",
        "chat.delete",
    }
    assert SLACK_APP_DISTRIBUTIONS["unlisted"].history_page_size == 15
