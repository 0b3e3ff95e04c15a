"""The pull's rate check is a gate, not a call: it asks the limiter without taking a slot, so a window with room for
exactly the requests a pull makes lets it run, and a full one defers it before anything is sent."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import RateLimitPolicy
from tests.integration.sync.world import GITHUB, LIMITS, World


def limited_to_one_fetch_a_minute(world: World, redis: aioredis.Redis, connection_id: str) -> None:
    overrides: dict[str, Any] = {**LIMITS, "connections": {connection_id: {"operations": {"fetch": 1}}}}
    world.limiter = RateLimiter(redis, RateLimitPolicy(overrides), world.clock)
    world.inbound = world.service()


async def test_a_window_with_room_for_the_pulls_one_request_lets_it_run(
    world: World, redis_client: aioredis.Redis
) -> None:
    connection = await world.connect(GITHUB)  # 40 issues: one page, one request
    limited_to_one_fetch_a_minute(world, redis_client, connection.id)

    result = await world.pull(connection)

    assert (result.status, result.pages) == ("succeeded", 1)
    assert world.sandbox.github.requests == 1
    window = await world.limiter.peek(tenant_id="t1", connection_id=connection.id, provider="github", operation="fetch")
    assert (window.allowed, window.level) == (False, "operation")  # the one slot went to the request itself


async def test_a_full_window_defers_the_pull_before_any_request(world: World, redis_client: aioredis.Redis) -> None:
    connection = await world.connect(GITHUB)
    limited_to_one_fetch_a_minute(world, redis_client, connection.id)
    await world.limiter.check(tenant_id="t1", connection_id=connection.id, provider="github", operation="fetch")

    result = await world.pull(connection)

    assert result.status == "deferred"
    assert world.sandbox.github.requests == 0
