"""Rate-limit check throughput and latency: ours against the ``limits`` library and a bare ``EVALSHA`` floor.

Run ``python -m benchmarks.ratelimit``. Uses ``REDIS_URL`` when set, else starts its own server (``EmbeddedRedis``).
All three run in the same process against the same server, sequentially and at concurrency 32:

* ours: ``RateLimiter.check`` — integration, operation and tenant levels in one atomic script call;
* ``limits``: its moving-window limiter doing the same three levels, one ``hit`` per level, through both of its
  async Redis clients (redis-py and coredis); the faster one is the baseline;
* floor: a bare ``EVALSHA`` of a one-key sorted-set script (evict, count, add, expire) through redis-py.

Limits are set high so every check is admitted (the costly path: it records at every level). Every run is bounded
in operations and in seconds. The last three lines are ``RESULT vs_limits_ratio``, ``RESULT vs_evalsha_ratio`` (the
throughput ratios at concurrency 32) and ``RESULT p99_ms_c32`` (ours).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.redis_client import connect
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import LimitedOperation, RateLimitPolicy

CONCURRENCY = 32
ROUNDS = 3
"""Concurrent runs go round-robin over the contenders this many times; each one's median round is its figure, so a
neighbour's burst of load on the machine cannot favour one contender."""
SEQUENTIAL_OPS, SEQUENTIAL_SECONDS = 3_000, 1.5
CONCURRENT_OPS, CONCURRENT_SECONDS = 40_000, 1.5
WARMUP_OPS = 1_000
HIGH = 10_000_000

TENANTS = [f"tenant-{n}" for n in range(4)]
CONNECTIONS = [
    (tenant, f"{tenant}-conn-{n}", provider)
    for tenant in TENANTS
    for n, provider in enumerate(("github", "salesforce", "google", "notion"))
]
OPERATIONS: tuple[LimitedOperation, ...] = ("fetch", "create", "update", "delete")
POLICY = {
    "defaults": {
        "tenant": HIGH,
        "integrations": dict.fromkeys(("github", "salesforce", "google", "notion"), HIGH),
        "operations": dict.fromkeys(OPERATIONS, HIGH),
    }
}


def operation_of(n: int) -> LimitedOperation:
    """Call ``n``'s operation: each connection cycles through all four, so a batch holds many distinct keys."""
    return OPERATIONS[(n // len(CONNECTIONS)) % len(OPERATIONS)]


FLOOR_SCRIPT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000000)
local count = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 60000)
return count
"""

Check = Callable[[int], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Run:
    """Operations done, in how long, and each one's latency."""

    ops: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.ops / self.seconds


def percentile(latencies_ms: list[float], share: float) -> float:
    ordered = sorted(latencies_ms)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def line(name: str, mode: str, rate: float, latencies_ms: list[float]) -> str:
    return (
        f"{name:<24} {mode:>4} {rate:>9,.0f} checks/s   p50 {percentile(latencies_ms, 0.50):6.3f} ms"
        f"   p99 {percentile(latencies_ms, 0.99):6.3f} ms"
    )


async def measure(check: Check, *, concurrency: int, max_ops: int, max_seconds: float) -> Run:
    """Run ``check`` from ``concurrency`` tasks until ``max_ops`` are done or ``max_seconds`` have passed."""
    sequence = itertools.count()
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        while (n := next(sequence)) < max_ops and time.perf_counter() < deadline:
            started = time.perf_counter()
            await check(n)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(len(latencies), time.perf_counter() - started, latencies)


@dataclass(frozen=True, slots=True)
class Figures:
    """A contender's sequential run and its concurrent rounds."""

    sequential: Run
    rounds: list[Run]

    @property
    def rate_c32(self) -> float:
        return statistics.median(run.rate for run in self.rounds)

    @property
    def latencies_c32(self) -> list[float]:
        return [latency for run in self.rounds for latency in run.latencies_ms]


async def compare(contenders: dict[str, Check], reset: Callable[[], Awaitable[object]]) -> dict[str, Figures]:
    """Warm each contender up and run it sequentially, then the concurrent rounds, each run on an empty database."""
    sequential: dict[str, Run] = {}
    for name, check in contenders.items():
        await measure(check, concurrency=CONCURRENCY, max_ops=WARMUP_OPS, max_seconds=2.0)
        await reset()
        sequential[name] = await measure(check, concurrency=1, max_ops=SEQUENTIAL_OPS, max_seconds=SEQUENTIAL_SECONDS)
        await reset()
    rounds: dict[str, list[Run]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, check in contenders.items():
            rounds[name].append(
                await measure(check, concurrency=CONCURRENCY, max_ops=CONCURRENT_OPS, max_seconds=CONCURRENT_SECONDS)
            )
            await reset()
    return {name: Figures(sequential[name], rounds[name]) for name in contenders}


def ours(redis: Redis) -> Check:
    limiter = RateLimiter(redis, RateLimitPolicy(POLICY), alert=lambda alert: None)

    async def check(n: int) -> object:
        tenant, connection, provider = CONNECTIONS[n % len(CONNECTIONS)]
        result = await limiter.check(
            tenant_id=tenant, connection_id=connection, provider=provider, operation=operation_of(n)
        )
        assert result.allowed
        return result

    return check


def limits_baseline(url: str, implementation: Literal["redispy", "coredis"]) -> Check:
    storage = RedisStorage(f"async+{url}", implementation=implementation)
    strategy = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerMinute(HIGH)

    async def check(n: int) -> object:
        tenant, connection, _ = CONNECTIONS[n % len(CONNECTIONS)]
        operation = operation_of(n)
        admitted = (
            await strategy.hit(item, tenant, "conn", connection)
            and await strategy.hit(item, tenant, "op", connection, operation)
            and await strategy.hit(item, tenant, "tenant")
        )
        assert admitted
        return admitted

    return check


def floor(redis: Redis) -> Check:
    sha: list[str] = []
    members = itertools.count()

    async def check(n: int) -> object:
        if not sha:
            sha.append(await redis.script_load(FLOOR_SCRIPT))
        _, connection, _ = CONNECTIONS[n % len(CONNECTIONS)]
        return await redis.evalsha(sha[0], 1, f"floor:{connection}", int(time.time() * 1e6), next(members))

    return check


@contextmanager
def redis_url() -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    with EmbeddedRedis() as server:
        yield server.url


async def main(url: str) -> None:
    redis = connect(url, timeout_seconds=5.0)
    plain = Redis.from_url(url)
    try:
        print(
            f"Redis at {url.split('@')[-1]}; concurrency {CONCURRENCY}, {ROUNDS} rounds, {len(CONNECTIONS)} connections"
        )
        figures = await compare(
            {
                "ours (3 levels, 1 call)": ours(redis),
                "limits/redispy (3 hits)": limits_baseline(url, "redispy"),
                "limits/coredis (3 hits)": limits_baseline(url, "coredis"),
                "floor (bare EVALSHA)": floor(plain),
            },
            plain.flushdb,
        )
    finally:
        await redis.aclose()
        await plain.aclose()
    for name, figure in figures.items():
        print(line(name, "seq", figure.sequential.rate, figure.sequential.latencies_ms))
        print(line(name, "c32", figure.rate_c32, figure.latencies_c32))
    ours_c32 = figures["ours (3 levels, 1 call)"]
    baseline = max((name for name in figures if name.startswith("limits")), key=lambda name: figures[name].rate_c32)
    print(f"baseline: the faster limits client, {baseline}")
    print(f"RESULT vs_limits_ratio {ours_c32.rate_c32 / figures[baseline].rate_c32:.2f}")
    print(f"RESULT vs_evalsha_ratio {ours_c32.rate_c32 / figures['floor (bare EVALSHA)'].rate_c32:.2f}")
    print(f"RESULT p99_ms_c32 {percentile(ours_c32.latencies_c32, 0.99):.3f}")


if __name__ == "__main__":
    with redis_url() as url:
        asyncio.run(main(url))
