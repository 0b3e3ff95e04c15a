"""The newcomer's first run, as a real process: ``castiel serve --sandbox`` serves the five stand-ins, seeds the demo
tenant, and pulls every provider; an edit made in the sandbox's GitHub (``castiel sandbox edit``) reaches the sandbox's
Notion once, by webhook, and nothing comes back to GitHub; a second start on the same data directory (a new sandbox)
starts tenant demo over: the same five connections and registrations, not a second set."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from castiel.backends.embedded_redis import free_port
from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.devhost.sandboxed import sandbox_url_of
from castiel.ports import Filter, Query
from tests.e2e.conftest import DevHost, StartHost, castiel

RECORDS = 6
SHARD_TYPES = {"task", "account", "message", "event"}


async def shard_counts(data_dir: Path) -> Counter[str]:
    store = SqliteDocumentStore(data_dir / DATABASE_FILE)
    try:
        page = await store.query("shards", Query(filters=(Filter("deleted", "==", False),), partition_key="demo"))
        return Counter(shard["shardType"] for shard in page.items)
    finally:
        await store.close()


async def pushes(sandbox: str, provider: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        found: list[dict[str, Any]] = (
            await http.get(f"{sandbox}/_sandbox/pushes", params={"provider": provider})
        ).json()
        return found


async def idle(host: DevHost) -> bool:
    queue = host.queue()
    try:
        stats = [await queue.stats(name) for name in ("sync-inbound", "sync-outbound")]
        return all(stat.active == 0 for stat in stats)
    finally:
        await queue.close()


async def test_the_demo_syncs_every_provider_and_an_edit_flows_from_github_to_notion(start_host: StartHost) -> None:
    host = await start_host("--sandbox", "--sandbox-port", str(free_port()), "--sandbox-records", str(RECORDS))
    sandbox = sandbox_url_of(host.data_dir)
    assert sandbox is not None

    async def every_type_has_shards() -> bool:
        return set(await shard_counts(host.data_dir)) >= SHARD_TYPES

    await host.wait_until(every_type_has_shards, "shards of every provider's type")

    async def both_ways_settled() -> bool:
        counts = await shard_counts(host.data_dir)
        created_both_ways = len(await pushes(sandbox, "github")) > 0 and len(await pushes(sandbox, "notion")) > 0
        return counts["task"] == 2 * RECORDS and created_both_ways and await idle(host)

    await host.wait_until(both_ways_settled, "GitHub issues and Notion tasks created in each other")
    github_writes = len(await pushes(sandbox, "github"))
    notion_writes = len(await pushes(sandbox, "notion"))

    [edited] = castiel(host.data_dir, "sandbox", "edit", "github", "--id", "1000000002")
    assert edited["title"].endswith("(edited)")

    async def reached_notion() -> bool:
        return len(await pushes(sandbox, "notion")) > notion_writes and await idle(host)

    await host.wait_until(reached_notion, "the edit in Notion")
    [update] = (await pushes(sandbox, "notion"))[notion_writes:]
    assert update["method"] == "PATCH"
    assert update["body"]["properties"]["Name"]["title"][0]["text"]["content"] == edited["title"]

    # Notion's webhook about our write has been received by now (the queues are idle): it was dropped as an echo.
    audits = castiel(host.data_dir, "webhooks", "deliveries", "demo-notion-webhook", "--json")
    assert any(audit["outcome"] == "accepted" for audit in audits)
    assert len(await pushes(sandbox, "github")) == github_writes
    assert len(await pushes(sandbox, "notion")) == notion_writes + 1
    assert await host.stop() == 0

    again = await start_host("--sandbox", "--sandbox-port", str(free_port()), data_dir=host.data_dir)
    connections = castiel(again.data_dir, "connections", "list", "--tenant", "demo", "--json")
    assert sorted(connection["id"] for connection in connections) == [
        "demo-github", "demo-google", "demo-notion", "demo-salesforce", "demo-slack",
    ]  # fmt: skip
    registrations = castiel(again.data_dir, "webhooks", "list", "--tenant", "demo", "--json")
    assert len(registrations) == 5
