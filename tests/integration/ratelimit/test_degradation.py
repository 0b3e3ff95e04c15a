"""Redis goes away mid-run: checks carry on against the local window, one alert per outage, Redis used again after
it comes back. The test owns its Redis server, so stopping it leaves the session's server alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.redis_client import connect
from castiel.clock import ManualClock
from castiel.models import RateLimitCheck
from castiel.ratelimit.alerts import AlertKind, RateLimitAlert
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import RateLimitPolicy


async def check(limiter: RateLimiter) -> RateLimitCheck:
    return await limiter.check(tenant_id="t1", connection_id="c1", provider="github", operation="fetch")


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        server.stop()


def outage_alerts(alerts: list[RateLimitAlert]) -> list[AlertKind]:
    return [alert.kind for alert in alerts if alert.kind in {AlertKind.DEGRADED, AlertKind.RECOVERED}]


async def limiter_keys(server: EmbeddedRedis) -> int:
    client = aioredis.Redis.from_url(server.url)
    try:
        return len(await client.keys("castiel:rl:*"))
    finally:
        await client.aclose()


async def test_checks_fall_back_to_the_local_window_and_return_to_redis(server: EmbeddedRedis) -> None:
    clock = ManualClock()
    alerts: list[RateLimitAlert] = []
    redis = connect(server.url)
    policy = RateLimitPolicy({"connections": {"c1": {"integration": 10}}})
    limiter = RateLimiter(redis, policy, clock, alerts.append, expected_instances=2)
    try:
        assert (await check(limiter)).allowed
        assert await limiter_keys(server) == 3

        server.stop()
        # Local window: the integration limit of 10 shared by 2 expected instances is 5 here.
        local = [await check(limiter) for _ in range(7)]
        assert [result.allowed for result in local] == [True] * 5 + [False] * 2
        assert (local[-1].queued, local[-1].level, local[-1].retry_after_seconds) == (True, "integration", 60.0)
        assert limiter.degraded
        assert outage_alerts(alerts) == [AlertKind.DEGRADED]

        clock.advance(1)  # the first retry is due after 1 s: it fails, and the next waits 2 s
        assert not (await check(limiter)).allowed
        assert outage_alerts(alerts) == [AlertKind.DEGRADED]

        server.start()  # same port, empty
        clock.advance(1)
        await check(limiter)
        assert await limiter_keys(server) == 0  # still backing off: not asked yet

        clock.advance(1)
        assert (await check(limiter)).allowed
        assert not limiter.degraded
        assert outage_alerts(alerts) == [AlertKind.DEGRADED, AlertKind.RECOVERED]
        assert await limiter_keys(server) == 3
    finally:
        await redis.aclose()


async def test_a_pause_observed_before_an_outage_still_holds_during_it(server: EmbeddedRedis) -> None:
    clock = ManualClock()
    redis = connect(server.url)
    limiter = RateLimiter(redis, RateLimitPolicy(), clock, lambda alert: None)
    try:
        await limiter.observe_response(
            tenant_id="t1", connection_id="c1", provider="github", status_code=429, headers={"Retry-After": "30"}
        )
        server.stop()
        paused = await check(limiter)
        assert (paused.allowed, paused.level, paused.retry_after_seconds) == (False, "provider", 30.0)
        assert limiter.degraded
    finally:
        await redis.aclose()
