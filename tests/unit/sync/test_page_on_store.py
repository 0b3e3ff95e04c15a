"""mapping → dedup → conflicts → sharding on a real SQLite store, a page at a time, as the inbound worker runs them:
one read of links, one read of shards (plus a query per key for composite dedup), one batch per container."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.models import ConflictStrategy, DedupStrategy
from castiel.ports import BatchOperation, Filter, Query, QueryPage
from castiel.sync.conflicts import ConflictSettings
from castiel.sync.dedup import DedupContext, decide, fold_page, link_ids, match_queries, shard_ids
from castiel.sync.mapping import compile_mappings
from castiel.sync.sharding import PageWrites, build_page
from tests.unit.sync.records import T0, Rec

MAPPING = compile_mappings(
    {"Contact": {"shardType": "contact", "fields": {"Email": "email", "Name": "name"}, "keys": [["email"]]}},
    {"Contact": "contact"},
)
SETTINGS = ConflictSettings(ConflictStrategy.FIELD_MERGE)


class CountingStore(SqliteDocumentStore):
    """The SQLite store, counting the calls a page makes."""

    calls: Counter[str]

    async def read_many(self, container: str, partition_key: str, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.calls[f"read_many {container}"] += 1
        return await super().read_many(container, partition_key, doc_ids)

    async def query(self, container: str, query: Query) -> QueryPage:
        self.calls[f"query {container}"] += 1
        return await super().query(container, query)

    async def write_batch(
        self, container: str, partition_key: str, operations: Sequence[BatchOperation]
    ) -> list[str | None]:
        self.calls[f"write_batch {container}"] += 1
        return await super().write_batch(container, partition_key, operations)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    counting = CountingStore(tmp_path / "castiel.db")
    counting.calls = Counter()
    try:
        yield counting
    finally:
        await counting.close()


async def sync_page(
    store: CountingStore, ctx: DedupContext, records: Sequence[Rec], *, links_written: bool = True
) -> tuple[PageWrites, int]:
    """One page through the pure core and the store; returns its writes and how many records were folded."""
    store.calls.clear()
    kept, folded = fold_page([mapped for record in records for mapped in ctx.mapping.map_record(record)])
    links = await store.read_many("external-ids", ctx.tenant_id, link_ids(kept, ctx))
    found = [doc for query in match_queries(kept, links, ctx) for doc in (await store.query("shards", query)).items]
    wanted = shard_ids(kept, links, ctx)
    shards = await store.read_many("shards", ctx.tenant_id, wanted) if wanted else {}
    writes = build_page(decide(kept, links, [*shards.values(), *found], ctx), links, ctx, SETTINGS, T0)
    batches = [("shards", writes.shards), ("conflicts", writes.conflicts)]
    batches += [("external-ids", writes.links)] if links_written else []
    for container, operations in batches:
        if operations:
            await store.write_batch(container, ctx.tenant_id, operations)
    return writes, folded


def contacts(count: int, **changes: dict[str, Any]) -> list[Rec]:
    records = {n: {"Email": f"person{n}@example.com", "Name": f"Person {n}"} for n in range(count)}
    for key, data in changes.items():
        records[int(key.removeprefix("c"))].update(data)
    return [Rec("Contact", f"c{n}", data) for n, data in records.items()]


def ctx(
    tenant: str = "t1", connection: str = "sf", strategy: DedupStrategy = DedupStrategy.EXTERNAL_ID
) -> DedupContext:
    return DedupContext(tenant, connection, strategy, MAPPING)


async def count(store: CountingStore, container: str, tenant: str, *filters: Filter) -> int:
    return await store.count(container, Query(filters=filters, partition_key=tenant))


async def test_a_page_is_one_read_of_links_one_of_shards_and_one_batch_per_container(store: CountingStore) -> None:
    writes, _ = await sync_page(store, ctx(), contacts(500))

    assert writes.counts.created == 500
    assert store.calls == {
        "read_many external-ids": 1,
        "read_many shards": 1,
        "write_batch shards": 1,
        "write_batch external-ids": 1,
    }
    assert await count(store, "shards", "t1") == await count(store, "external-ids", "t1") == 500


async def test_a_second_run_is_all_unchanged_without_reading_a_shard_and_an_edit_is_one_update(
    store: CountingStore,
) -> None:
    await sync_page(store, ctx(), contacts(300))

    again, _ = await sync_page(store, ctx(), contacts(300))
    assert (again.counts.unchanged, again.counts.created, again.counts.updated) == (300, 0, 0)
    assert store.calls == {"read_many external-ids": 1}

    edited, _ = await sync_page(store, ctx(), contacts(300, c7={"Name": "Person Seven"}))
    assert (edited.counts.updated, edited.counts.unchanged) == (1, 299)
    shard = (await store.query("shards", Query((Filter("externalIds.sf", "==", "c7"),), "t1"))).items[0]
    assert shard["data"]["name"] == "Person Seven"


async def test_duplicates_inside_a_page_are_folded(store: CountingStore) -> None:
    page = [*contacts(3), Rec("Contact", "c1", {"Email": "new@example.com"}, T0 + timedelta(seconds=1))]

    writes, folded = await sync_page(store, ctx(), page)

    assert (folded, writes.counts.created) == (1, 3)
    shard = (await store.query("shards", Query((Filter("externalIds.sf", "==", "c1"),), "t1"))).items[0]
    assert shard["data"] == {"email": "new@example.com"}


async def test_two_tenants_with_the_same_records_never_share_a_shard(store: CountingStore) -> None:
    await sync_page(store, ctx("t1"), contacts(50))

    other, _ = await sync_page(store, ctx("t2"), contacts(50, c3={"Name": "Changed in t2"}))
    mine, _ = await sync_page(store, ctx("t1"), contacts(50))

    assert other.counts.created == 50
    assert mine.counts.unchanged == 50
    assert await count(store, "shards", "t1") == await count(store, "shards", "t2") == 50
    t1_ids = {doc["id"] for doc in (await store.query("shards", Query(partition_key="t1"))).items}
    t2_ids = {doc["id"] for doc in (await store.query("shards", Query(partition_key="t2"))).items}
    assert not t1_ids & t2_ids


async def test_composite_key_matches_the_shard_another_connection_made_and_only_in_its_tenant(
    store: CountingStore,
) -> None:
    await sync_page(store, ctx("t1"), contacts(10))
    await sync_page(store, ctx("t2"), contacts(10))
    hub = [Rec("Contact", "h-1", {"Email": " PERSON4@example.com", "Name": "P. Four"})]

    writes, _ = await sync_page(store, ctx("t1", "hub", DedupStrategy.COMPOSITE_KEY), hub)

    # No history between the two connections: both differing fields are conflicts, the shard's values kept.
    c = writes.counts
    assert (c.duplicates, c.created, c.unchanged, c.conflicts) == (1, 0, 1, 2)
    assert await count(store, "conflicts", "t1") == 2
    assert store.calls["query shards"] == 1
    shard = (await store.query("shards", Query((Filter("externalIds.hub", "==", "h-1"),), "t1"))).items[0]
    assert shard["externalIds"] == {"sf": "c4", "hub": "h-1"}
    assert await count(store, "shards", "t1") == 10
    assert await count(store, "shards", "t2", Filter("externalIds.hub", "==", "h-1")) == 0


async def test_a_deletion_tombstones_the_shard(store: CountingStore) -> None:
    await sync_page(store, ctx(), contacts(5))

    writes, _ = await sync_page(store, ctx(), [Rec("Contact", "c2", deleted=True)])

    assert writes.counts.deleted == 1
    assert await count(store, "shards", "t1", Filter("deleted", "==", True)) == 1
    assert await count(store, "external-ids", "t1", Filter("deleted", "==", True)) == 1


async def test_a_page_redone_after_its_links_were_lost_writes_the_same_shards(store: CountingStore) -> None:
    await sync_page(store, ctx(), contacts(40), links_written=False)  # the worker died before the links batch

    redone, _ = await sync_page(store, ctx(), contacts(40))

    assert (redone.counts.created, redone.counts.unchanged) == (0, 40)
    assert await count(store, "shards", "t1") == await count(store, "external-ids", "t1") == 40
