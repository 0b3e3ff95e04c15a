"""A page whose save loses a race to another writer is redone from fresh reads, losing neither write; two tenants with
identical connections and external ids never read, match, merge or count each other's records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from castiel.errors import RetryableError
from castiel.models import ConflictStrategy, DedupStrategy
from castiel.ports import BatchOperation
from tests.integration.adapters.conftest import live_ids
from tests.integration.sync.world import SALESFORCE, World, external_ids


def racing(world: World, writer: Any, times: int) -> list[str]:
    """Make the next ``times`` shard batches with a replace lose to ``writer(doc)``, written just before them."""
    store = world.store
    plain = store.write_batch
    raced: list[str] = []

    async def write_batch(container: str, partition_key: str, operations: Sequence[BatchOperation]) -> Any:
        replaced = [op for op in operations if op.kind == "replace" and op.doc is not None]
        if container == "shards" and replaced and len(raced) < times:
            stored = await store.read("shards", str(replaced[0].doc["id"]), partition_key)  # type: ignore[index]
            await store.replace("shards", writer(stored), if_match=stored["_etag"])
            raced.append(stored["id"])
        return await plain(container, partition_key, operations)

    store.write_batch = write_batch  # type: ignore[method-assign]
    return raced


async def test_a_page_that_loses_a_race_is_redone_and_both_writes_survive(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await world.connect(SALESFORCE, conflict_strategy=ConflictStrategy.FIELD_MERGE)
    await world.pull(connection)
    first = live_ids(world.sandbox, SALESFORCE)[0]
    world.clock.advance(120)
    world.sandbox.edit("salesforce", ids=[first])

    def someone_else(shard: dict[str, Any]) -> dict[str, Any]:
        data = {**shard["data"], "Industry": "Edited elsewhere"}
        return {**shard, "data": data, "fieldSources": {**shard["fieldSources"], "Industry": "local"}}

    raced = racing(world, someone_else, times=1)
    with caplog.at_level(logging.INFO, logger="castiel"):
        result = await world.pull(connection)

    assert len(raced) == 1
    assert "sync.page_redone" in caplog.text
    assert (result.status, result.counts.updated, result.counts.conflicts) == ("succeeded", 1, 0)
    shard = await world.shard_of(connection, first)
    assert shard["data"]["Industry"] == "Edited elsewhere"
    assert shard["data"]["Name"].endswith("(edited)")


async def test_a_page_that_keeps_losing_races_is_retried_later(world: World) -> None:
    connection = await world.connect(SALESFORCE)
    await world.pull(connection)
    world.clock.advance(120)
    world.sandbox.edit("salesforce", count=1)
    racing(world, lambda shard: {**shard, "data": {**shard["data"], "Industry": f"x{shard['_ts']}"}}, times=99)

    result = await world.pull(connection)

    assert result.status == "failed"
    assert result.error is not None
    assert "kept losing races" in result.error


async def test_two_tenants_with_identical_connections_and_records_never_meet(world: World) -> None:
    by_name = {"Account": {"shardType": "account", "keys": [["Name"]]}}
    same = {"connection_id": "sf", "entity_mappings": by_name, "dedup_strategy": DedupStrategy.COMPOSITE_KEY}
    ours = await world.connect(SALESFORCE, tenant="t1", **same)
    theirs = await world.connect(SALESFORCE, tenant="t2", **same)
    records = len(live_ids(world.sandbox, SALESFORCE))

    first, second = await asyncio.gather(world.pull(ours), world.pull(theirs))

    for result in (first, second):
        assert (result.counts.created, result.counts.duplicates, result.counts.conflicts) == (records, 0, 0)
    t1, t2 = await world.docs("shards", "t1"), await world.docs("shards", "t2")
    assert external_ids(t1, ours) == external_ids(t2, theirs)
    assert not {doc["id"] for doc in t1} & {doc["id"] for doc in t2}

    # A second connection of t1 only, matching by name: it finds t1's shards and nothing of t2's.
    hub = await world.connect(SALESFORCE, tenant="t1", connection_id="hub", entity_mappings=by_name,
                              dedup_strategy=DedupStrategy.COMPOSITE_KEY)  # fmt: skip
    matched = await world.pull(hub)
    assert (matched.counts.duplicates, matched.counts.created) == (records, 0)
    assert all(set(doc["externalIds"]) == {"sf", "hub"} for doc in await world.docs("shards", "t1"))
    assert all(set(doc["externalIds"]) == {"sf"} for doc in await world.docs("shards", "t2"))
    t1_ids = {doc["id"] for doc in await world.docs("shards", "t1")}
    assert {link["shardId"] for link in await world.docs("external-ids", "t1")} == t1_ids
    assert {link["shardId"] for link in await world.docs("external-ids", "t2")} == {doc["id"] for doc in t2}
    assert await world.docs("conflicts", "t2") == []


async def test_shards_saved_without_their_links_are_found_again_not_created_twice(world: World) -> None:
    connection = await world.connect(SALESFORCE)
    store = world.store
    plain = store.write_batch

    async def links_fail(container: str, partition_key: str, operations: Sequence[BatchOperation]) -> Any:
        if container == "external-ids":
            raise RetryableError("sqlite document store: disk I/O error")
        return await plain(container, partition_key, operations)

    store.write_batch = links_fail  # type: ignore[method-assign]
    failed = await world.pull(connection)
    store.write_batch = plain  # type: ignore[method-assign]
    assert (failed.status, await world.docs("external-ids")) == ("failed", [])
    orphans = await world.docs("shards")
    assert len(orphans) > 0

    redone = await world.pull(connection)

    records = len(live_ids(world.sandbox, SALESFORCE))
    assert redone.status == "succeeded"
    assert (redone.counts.created, redone.counts.unchanged) == (records - len(orphans), len(orphans))
    assert len(await world.docs("shards")) == len(await world.docs("external-ids")) == records
