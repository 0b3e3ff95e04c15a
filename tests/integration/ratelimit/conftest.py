"""A limiter on the session's Redis server, with a hand-moved clock and its alerts collected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from castiel.clock import ManualClock
from castiel.ratelimit.alerts import RateLimitAlert
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import RateLimitPolicy

MakeLimiter = Callable[..., RateLimiter]


@pytest.fixture
def alerts() -> list[RateLimitAlert]:
    return []


@pytest.fixture
def make_limiter(redis_client: aioredis.Redis, clock: ManualClock, alerts: list[RateLimitAlert]) -> MakeLimiter:
    """``make_limiter(overrides, **options)``: a limiter on the flushed test database."""

    def make(overrides: dict[str, Any] | None = None, **options: Any) -> RateLimiter:
        return RateLimiter(redis_client, RateLimitPolicy(overrides), clock, alerts.append, **options)

    return make
