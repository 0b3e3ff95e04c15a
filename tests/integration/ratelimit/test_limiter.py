"""The rate limiter against a real Redis server: exactness under concurrency, decisions, adaptivity, alerts."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.redis_client import connect
from castiel.clock import ManualClock, now_utc
from castiel.errors import Deferred, RateLimited
from castiel.models import RateLimitCheck
from castiel.ratelimit.alerts import AlertKind, RateLimitAlert, Subject
from castiel.ratelimit.limiter import RateLimiter, raise_for_check
from castiel.ratelimit.policy import LimitedOperation, RateLimitPolicy
from castiel.settings import Settings

from .conftest import MakeLimiter

CALL = {"tenant_id": "t1", "connection_id": "c1", "provider": "github"}


async def fetch(
    limiter: RateLimiter,
    operation: LimitedOperation = "fetch",
    *,
    tenant_id: str = "t1",
    connection_id: str = "c1",
    provider: str = "github",
) -> RateLimitCheck:
    return await limiter.check(tenant_id=tenant_id, connection_id=connection_id, provider=provider, operation=operation)


async def test_exactly_the_limit_is_admitted_per_window_however_many_hammer_it(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    # Four limiters stand for four instances: each batches its own checks, all share the Redis windows.
    limiters = [make_limiter({"connections": {"c1": {"integration": 50}}}) for _ in range(4)]
    for _ in range(2):
        results = await asyncio.gather(*(fetch(limiters[n % 4]) for n in range(400)))
        assert sum(result.allowed for result in results) == 50
        assert all(result.queued for result in results if not result.allowed)
        clock.advance(60)


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from castiel.clock import ManualClock
    from castiel.backends.redis_client import connect
    from castiel.ratelimit.limiter import RateLimiter
    from castiel.ratelimit.policy import RateLimitPolicy

    async def main(url, start, count):
        redis = connect(url)
        limiter = RateLimiter(redis, RateLimitPolicy({"connections": {"c1": {"integration": 100}}}), ManualClock(start))
        print("ready", flush=True)
        sys.stdin.readline()
        checks = [
            limiter.check(tenant_id="t1", connection_id="c1", provider="github", operation="fetch")
            for _ in range(count)
        ]
        results = await asyncio.gather(*checks)
        print(sum(result.allowed for result in results), flush=True)
        await redis.aclose()

    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
    """
)


async def test_two_processes_together_get_exactly_the_limit(
    redis_server: EmbeddedRedis, make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, redis_server.url, str(clock()), "300",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), timeout=30) == b"ready\n"
    limiter = make_limiter({"connections": {"c1": {"integration": 100}}})
    child.stdin.write(b"go\n")
    await child.stdin.drain()
    ours = await asyncio.gather(*(fetch(limiter) for _ in range(300)))
    theirs = int(await asyncio.wait_for(child.stdout.readline(), timeout=30))
    assert await child.wait() == 0
    assert sum(result.allowed for result in ours) + theirs == 100


@pytest.mark.parametrize(
    ("operation", "queued", "error"),
    [("fetch", True, Deferred), ("create", True, Deferred), ("update", True, Deferred), ("delete", False, RateLimited)],
)
async def test_over_the_limit_writes_are_queued_and_deletes_refused(
    make_limiter: MakeLimiter, clock: ManualClock, operation: LimitedOperation, queued: bool, error: type[Exception]
) -> None:
    limiter = make_limiter({"connections": {"c1": {"operations": {operation: 1}}}})
    admitted = await fetch(limiter, operation)
    raise_for_check(admitted)
    clock.advance(15)

    refused = await fetch(limiter, operation)
    assert refused == RateLimitCheck(
        allowed=False,
        queued=queued,
        remaining=0,
        reset_at=now_utc(clock) + timedelta(seconds=45),
        retry_after_seconds=45.0,
        level="operation",
    )
    with pytest.raises(error) as raised:
        raise_for_check(refused)
    assert raised.value.retry_after == 45.0  # type: ignore[attr-defined]


async def test_retry_after_is_when_the_oldest_entry_leaves_by_the_clock(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter({"connections": {"c1": {"integration": 2}}})
    assert (await fetch(limiter)).allowed
    clock.advance(10.25)
    assert (await fetch(limiter)).allowed
    clock.advance(14.5)
    assert (await fetch(limiter)).retry_after_seconds == 35.25
    clock.advance(35.25 - 0.000001)
    assert (await fetch(limiter)).retry_after_seconds == pytest.approx(0.000001, abs=1e-9)
    clock.advance(0.000001)
    admitted = await fetch(limiter)
    assert admitted.allowed
    assert admitted.reset_at == now_utc(clock) - timedelta(seconds=60 - 10.25) + timedelta(seconds=60)


async def test_a_peek_takes_no_slot_and_raises_no_alert(
    make_limiter: MakeLimiter, alerts: list[RateLimitAlert]
) -> None:
    limiter = make_limiter({"connections": {"c1": {"operations": {"fetch": 1}}}})
    peeks = [await limiter.peek(**CALL, operation="fetch") for _ in range(3)]
    assert [(peek.allowed, peek.remaining) for peek in peeks] == [(True, 1)] * 3
    assert alerts == []

    assert (await fetch(limiter)).allowed
    fired = list(alerts)
    refused = await limiter.peek(**CALL, operation="fetch")
    assert (refused.allowed, refused.queued, refused.level, refused.retry_after_seconds) == (
        False,
        True,
        "operation",
        60.0,
    )
    assert alerts == fired


async def test_a_full_tenant_refuses_every_connection_of_it_and_only_it(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter({"tenants": {"t1": {"tenant": 3}}})
    assert all([(await fetch(limiter, connection_id=f"c{n}")).allowed for n in range(3)])
    refused = await fetch(limiter, connection_id="c9")
    assert (refused.allowed, refused.level) == (False, "tenant")
    assert (await fetch(limiter, tenant_id="t2", connection_id="c9")).allowed


async def test_tenants_never_share_a_budget_through_a_connection_id(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter({"connections": {"shared-id": {"integration": 1}}})
    assert (await fetch(limiter, tenant_id="a", connection_id="shared-id")).allowed
    assert (await fetch(limiter, tenant_id="b", connection_id="shared-id")).allowed
    assert not (await fetch(limiter, tenant_id="a", connection_id="shared-id")).allowed


async def test_every_key_expires(make_limiter: MakeLimiter, redis_client: aioredis.Redis) -> None:
    limiter = make_limiter()
    await fetch(limiter)
    await limiter.observe_response(**CALL, status_code=429, headers={"Retry-After": "30"})
    keys = await redis_client.keys("castiel:rl:*")
    assert len(keys) == 4
    ttls = [await redis_client.pttl(key) for key in keys]
    assert all(0 < ttl <= 150_000 for ttl in ttls), ttls


async def test_the_script_is_loaded_again_after_the_server_forgets_it(
    make_limiter: MakeLimiter, redis_client: aioredis.Redis
) -> None:
    limiter = make_limiter({"connections": {"c1": {"integration": 2}}})
    assert (await fetch(limiter)).allowed
    await redis_client.script_flush()
    assert (await fetch(limiter)).remaining == 0
    await redis_client.script_flush()
    await limiter.observe_response(**CALL, status_code=429, headers={"Retry-After": "5"})
    assert (await fetch(limiter)).level == "provider"


async def test_a_429_pauses_the_connection_for_every_instance_then_it_recovers_step_by_step(
    make_limiter: MakeLimiter, clock: ManualClock, alerts: list[RateLimitAlert]
) -> None:
    overrides = {"connections": {"c1": {"integration": 8}}}
    observer, other = make_limiter(overrides), make_limiter(overrides)
    await observer.observe_response(**CALL, status_code=429, headers={"Retry-After": "30"})
    clock.advance(10)
    await observer.observe_response(**CALL, status_code=429, headers={"Retry-After": "20"})
    assert [alert.kind for alert in alerts] == [AlertKind.CONNECTION_PAUSED]

    paused = await fetch(other, "create")
    assert (paused.allowed, paused.queued, paused.level, paused.retry_after_seconds) == (False, True, "provider", 20.0)

    # Resumes at a quarter; a quiet window later half, another later whole (each step also empties the window).
    for seconds, admitted in ((20, 2), (60, 4), (60, 8)):
        clock.advance(seconds)
        results = [await fetch(other) for _ in range(10)]
        assert sum(result.allowed for result in results) == admitted


async def test_a_provider_quota_running_low_halves_then_quarters_the_limit(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter({"connections": {"c1": {"integration": 8}}})
    github = {"X-RateLimit-Limit": "5000", "X-RateLimit-Reset": str(int(clock()) + 3600)}
    await limiter.observe_response(**CALL, status_code=200, headers={**github, "X-RateLimit-Remaining": "900"})
    assert sum([(await fetch(limiter)).allowed for _ in range(10)]) == 4
    clock.advance(30)
    await limiter.observe_response(**CALL, status_code=200, headers={**github, "X-RateLimit-Remaining": "100"})
    clock.advance(30)  # the first four leave the window
    assert sum([(await fetch(limiter)).allowed for _ in range(10)]) == 2


async def test_a_used_up_daily_quota_pauses_until_reset_so_the_sync_can_stop_cleanly(
    make_limiter: MakeLimiter, alerts: list[RateLimitAlert]
) -> None:
    limiter = make_limiter()
    sforce = {"Sforce-Limit-Info": "api-usage=15000/15000"}
    await limiter.observe_response(**{**CALL, "provider": "salesforce"}, status_code=403, headers=sforce)
    check = await fetch(limiter, provider="salesforce")
    assert (check.queued, check.level, check.retry_after_seconds) == (True, "provider", 3600.0)
    assert alerts[0].kind is AlertKind.CONNECTION_PAUSED
    assert "quota of 15000 used up" in alerts[0].detail


async def test_usage_alerts_fire_at_80_and_100_percent_once_per_window(
    make_limiter: MakeLimiter, clock: ManualClock, alerts: list[RateLimitAlert]
) -> None:
    limiter = make_limiter({"connections": {"c1": {"integration": 5}}})
    for _ in range(2):
        for _ in range(7):
            await fetch(limiter)
        kinds = [(alert.kind, alert.level) for alert in alerts]
        assert kinds == [(AlertKind.USAGE_80, "integration"), (AlertKind.USAGE_100, "integration")]
        assert alerts[1].subject == Subject("t1", "c1", "github")
        alerts.clear()
        clock.advance(60)


async def test_a_broken_alert_callback_does_not_fail_the_check(
    redis_client: aioredis.Redis, clock: ManualClock
) -> None:
    def broken(alert: RateLimitAlert) -> None:
        raise RuntimeError("alert sink down")

    limiter = RateLimiter(redis_client, RateLimitPolicy({"connections": {"c1": {"integration": 1}}}), clock, broken)
    assert (await fetch(limiter)).allowed
    assert not (await fetch(limiter)).allowed


async def test_built_from_settings(
    monkeypatch: pytest.MonkeyPatch, redis_server: EmbeddedRedis, clock: ManualClock
) -> None:
    monkeypatch.setenv("RATE_LIMIT_OVERRIDES", '{"tenants": {"t1": {"tenant": 2}}}')
    monkeypatch.setenv("RATE_LIMIT_EXPECTED_INSTANCES", "4")
    redis = connect(redis_server.url)
    try:
        await redis.flushdb()
        limiter = RateLimiter.from_settings(Settings(), redis, clock=clock)
        assert [(await fetch(limiter)).allowed for _ in range(3)] == [True, True, False]
    finally:
        await redis.aclose()
