"""A 50,000-record fetch through an adapter against the sandbox: throughput against bare paging, and flat memory.

Run ``python -m benchmarks.adapter_fetch [provider] [records]`` (default ``salesforce 50000``). Uses ``REDIS_URL`` when
set, else starts its own server. The sandbox runs in the same process, on loopback, as in the end-to-end tests.

* ours: ``adapter.fetch`` — every request admitted by the limiter (one Redis round trip), its headers observed, the
  reply resolved, records built and the cursor advanced;
* baseline: the same requests, pagination and JSON decoding with a bare ``httpx.AsyncClient`` — no limiter, no
  resolution table, no records or cursor;
* memory: ``adapter.fetch`` again under ``tracemalloc``, garbage collected at the edge of each stretch of pages: what is
  held must not grow with the pages, nor the peak from one stretch to the next.

The last lines are ``RESULT vs_bare_ratio`` (our throughput over the baseline's), ``RESULT records_per_second`` and
``RESULT held_growth_kb`` / ``RESULT peak_spread_kb`` (memory over the whole fetch).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager

import httpx

from adapters.base import BaseAdapter
from adapters.engine import HttpEngine
from adapters.providers import build_registry
from adapters.wire import Reply
from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.redis_client import connect
from castiel.clock import ManualClock
from castiel.models import Connection, Provider
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import RateLimitPolicy
from castiel.sandbox.notion import DATA_SOURCE_ID
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.slack import CHANNEL_ID
from castiel.sandbox.state import Sandbox

START = 1_735_862_400.0
HIGH = 10_000_000
ENTITIES = {
    "salesforce": ("Account", {}),
    "notion": ("page", {"dataSourceId": DATA_SOURCE_ID}),
    "slack": ("message", {"channel": CHANNEL_ID}),
    "github": ("issue", {"repository": "acme/widgets"}),
    "google": ("event", {}),
}
STRETCHES = 4


class BenchAuth:
    """Any token: the sandbox accepts it."""

    async def auth_for_connection(self, connection: Connection) -> httpx.Auth:
        return _Bearer()

    async def api_root_for_connection(self, connection: Connection) -> str | None:
        return None


class _Bearer(httpx.Auth):
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer bench"
        yield request


@asynccontextmanager
async def world(provider: str, records: int) -> AsyncIterator[tuple[BaseAdapter, Connection, httpx.AsyncClient]]:
    """The sandbox served, and the provider's adapter over the real limiter with limits out of the way."""
    embedded = None if os.environ.get("REDIS_URL") else EmbeddedRedis().start()
    redis = connect(os.environ["REDIS_URL"] if embedded is None else embedded.url)
    clock = ManualClock(START)
    policy = RateLimitPolicy(
        {"defaults": {"tenant": HIGH, "integrations": {provider: HIGH}, "operations": {"fetch": HIGH}}}
    )
    try:
        async with SandboxServer(Sandbox(records=records, clock=clock)) as server, httpx.AsyncClient() as http:
            engine = HttpEngine(http, RateLimiter(redis, policy, clock), BenchAuth(), clock=clock)
            entity, settings = ENTITIES[provider]
            connection = Connection(
                id="bench",
                tenant_id="bench",
                integration_id=provider,
                provider=Provider(provider),
                base_url=server.base_urls()[provider],
                settings=settings,
                entity_types=[entity],
            )
            yield build_registry(engine).get(Provider(provider)), connection, http
    finally:
        await redis.aclose()
        if embedded is not None:
            embedded.stop()


async def ours(adapter: BaseAdapter, connection: Connection) -> tuple[int, int]:
    """Records and pages fetched through the adapter."""
    records = pages = 0
    async for page in adapter.fetch(connection, connection.entity_types[0]):
        records, pages = records + len(page.records), pages + 1
    return records, pages


async def bare(adapter: BaseAdapter, connection: Connection, http: httpx.AsyncClient) -> tuple[int, int]:
    """Items and pages fetched by the same requests and pagination with a bare client."""
    session = await adapter.open(connection)
    stream = await adapter.stream(session, connection.entity_types[0])
    request, paginator, count = stream.request(stream.cursor.load(None)), stream.paginator(), 0
    while True:
        url = request.url if request.url.startswith("http") else session.api_root + request.url
        response = await http.request(request.method, url, params=request.params, json=request.json, auth=session.auth)
        reply = Reply(response)
        items = stream.items(reply)
        count += len(items) if isinstance(items, list) else 0
        paginator.advance(reply, "bench")
        if paginator.finished:
            return count, paginator.pages
        request = paginator.next_request(request)


async def timed(run: Callable[[], Awaitable[tuple[int, int]]]) -> tuple[int, float]:
    """Records fetched by ``run`` and the seconds it took."""
    started = time.perf_counter()
    records, _ = await run()
    return records, time.perf_counter() - started


async def memory(adapter: BaseAdapter, connection: Connection, pages: int) -> tuple[list[int], list[int]]:
    """Held memory and the peak at the edge of each of ``STRETCHES`` stretches, after a first one to warm up."""
    step = max(1, pages // (STRETCHES + 1))
    held: list[int] = []
    peaks: list[int] = []
    tracemalloc.start()
    try:
        count = 0
        async for _ in adapter.fetch(connection, connection.entity_types[0]):
            count += 1
            if count % step == 0:
                gc.collect()
                now, peak = tracemalloc.get_traced_memory()
                held.append(now)
                peaks.append(peak)
                tracemalloc.reset_peak()
    finally:
        tracemalloc.stop()
    return held, peaks


async def main(provider: str, records: int) -> None:
    async with world(provider, records) as (adapter, connection, http):
        _, pages = await ours(adapter, connection)  # warm-up: connections, caches, the limiter's script
        bare_count, bare_seconds = await timed(lambda: bare(adapter, connection, http))
        our_count, our_seconds = await timed(lambda: ours(adapter, connection))
        held, peaks = await memory(adapter, connection, pages)
    print(f"{provider}: {our_count} records in {our_seconds:.2f} s through the adapter ({pages} pages)")
    print(f"bare paging: {bare_count} items in {bare_seconds:.2f} s")
    print(f"held at stretch edges (KiB): {[n // 1024 for n in held]}; peaks (KiB): {[n // 1024 for n in peaks[1:]]}")
    print(f"RESULT vs_bare_ratio {bare_seconds / our_seconds:.3f}")
    print(f"RESULT records_per_second {our_count / our_seconds:.0f}")
    print(f"RESULT held_growth_kb {(max(held) - held[0]) / 1024:.0f}")
    print(f"RESULT peak_spread_kb {(max(peaks[1:]) - min(peaks[1:])) / 1024:.0f}")


if __name__ == "__main__":
    provider_arg = sys.argv[1] if len(sys.argv) > 1 else "salesforce"
    asyncio.run(main(provider_arg, int(sys.argv[2]) if len(sys.argv) > 2 else 50_000))
