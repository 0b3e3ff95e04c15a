"""A long fetch streams page by page with flat memory: what is held once garbage is collected does not grow with the
pages, nor does the peak from one stretch of pages to the next (the 50,000-record run is ``benchmarks.adapter_fetch``,
too slow under ``tracemalloc`` for the suite)."""

from __future__ import annotations

import gc
import tracemalloc

import httpx
import redis.asyncio as aioredis

from adapters.engine import HttpEngine
from adapters.notion import NotionAdapter
from castiel.clock import ManualClock
from castiel.models import Connection, Provider
from castiel.sandbox.notion import DATA_SOURCE_ID
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.state import Sandbox
from tests.integration.adapters.conftest import START
from tests.unit.adapters.support import Sleeps, StaticAuth, limiter

RECORDS = 4000
WARMUP_PAGES = 5
WINDOW = 10


async def test_a_long_fetch_holds_one_page_at_a_time(redis_client: aioredis.Redis) -> None:
    clock = ManualClock(START)
    connection = Connection(
        id="c-stream",
        tenant_id="t",
        integration_id="notion",
        provider=Provider.NOTION,
        settings={"dataSourceId": DATA_SOURCE_ID},
    )
    async with SandboxServer(Sandbox(records=RECORDS, clock=clock)) as server, httpx.AsyncClient() as http:
        engine = HttpEngine(http, limiter(redis_client, clock), StaticAuth(), clock=clock, sleep=Sleeps(clock))
        pages = NotionAdapter(engine).fetch(
            connection.model_copy(update={"base_url": server.base_urls()["notion"]}), "page"
        )
        count = 0
        peaks: list[int] = []
        held: list[int] = []
        tracemalloc.start()
        try:
            async for page in pages:
                count += 1
                assert page.records
                if count >= WARMUP_PAGES and (count - WARMUP_PAGES) % WINDOW == 0:
                    # Garbage collected at each window's edge, so the windows differ only by what the fetch holds.
                    gc.collect()
                    now, peak = tracemalloc.get_traced_memory()
                    held.append(now)
                    peaks.append(peak)
                    tracemalloc.reset_peak()
        finally:
            tracemalloc.stop()
    assert count == RECORDS // 100
    assert len(peaks) == 4  # the warm-up's edge, then three windows of ten pages
    assert max(held) - held[0] < 128 * 1024, f"held memory grew: {held}"
    assert max(peaks[1:]) - min(peaks[1:]) < 128 * 1024, f"the peak moved from window to window: {peaks[1:]}"
