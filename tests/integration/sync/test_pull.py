"""A pull of each provider into shards over real HTTP: every record lands once, a second pass changes nothing, an edit
is one update, deletions tombstone, a record that cannot be mapped is reported and does not stop the page."""

from __future__ import annotations

import pytest

from castiel.errors import NotFound
from castiel.models import ConflictStrategy, DedupStrategy, TaskStatus
from castiel.ports import Filter
from castiel.sync.results import Phase
from tests.integration.adapters.conftest import Case, live_ids
from tests.integration.sync.world import (
    BY_PROVIDER,
    GOOGLE,
    RETENTION,
    SALESFORCE,
    World,
    external_ids,
)

EVERY_PHASE = [phase.value for phase in Phase]


@BY_PROVIDER
async def test_a_pull_fills_shards_a_second_pass_is_unchanged_and_an_edit_is_one_update(
    world: World, case: Case
) -> None:
    connection = await world.connect(case)
    expected = live_ids(world.sandbox, case)

    first = await world.pull(connection)

    assert (first.status, first.error, first.phase) == ("succeeded", None, "complete")
    assert [phase.name for phase in first.phases] == EVERY_PHASE
    assert (first.counts.fetched, first.counts.created, first.counts.failed) == (len(expected), len(expected), 0)
    assert external_ids(await world.docs("shards"), connection) == sorted(expected)
    assert len(await world.docs("external-ids")) == len(expected)
    task = await world.task(connection)
    assert task.status is TaskStatus.PENDING
    assert task.last_result_id == first.id
    assert case.entity_type in task.cursors

    again = await world.pull(connection, full=True)
    counts = again.counts
    assert (counts.fetched, counts.unchanged, counts.created, counts.updated) == (len(expected), len(expected), 0, 0)

    if not case.sees_edits:
        return
    world.clock.advance(120)
    (edited,) = world.sandbox.edit(case.id, ids=[expected[0]])
    third = await world.pull(connection)
    assert (third.counts.updated, third.counts.created, third.counts.deleted) == (1, 0, 0)
    shard = await world.shard_of(connection, expected[0])
    assert {name: shard["data"][name] for name in edited if name in shard["data"]} == {
        name: value for name, value in edited.items() if name in shard["data"]
    }


@pytest.mark.parametrize("case", [SALESFORCE, GOOGLE], ids=lambda case: case.id)
async def test_a_deletion_tombstones_link_and_shard_until_the_retention_period_ends(world: World, case: Case) -> None:
    connection = await world.connect(case)
    await world.pull(connection)
    gone = live_ids(world.sandbox, case)[3]
    world.clock.advance(120)
    world.sandbox.delete(case.id, ids=[gone])

    result = await world.pull(connection)

    assert (result.counts.deleted, result.counts.created, result.counts.updated) == (1, 0, 0)
    shard = await world.shard_of(connection, gone)
    assert (shard["deleted"], shard["ttl"]) == (True, int(RETENTION.total_seconds()))
    assert shard["sync"][connection.id]["deleted"] is True
    (link,) = await world.docs("external-ids", "t1", Filter("externalId", "==", gone))
    assert (link["deleted"], link["ttl"]) == (True, int(RETENTION.total_seconds()))
    assert len(await world.docs("shards", "t1", Filter("deleted", "==", False))) == len(live_ids(world.sandbox, case))

    world.clock.advance(RETENTION.total_seconds() + 1)
    with pytest.raises(NotFound):
        await world.store.read("shards", shard["id"], "t1")


async def test_a_deletion_keeps_the_shard_while_another_connection_still_holds_it(world: World) -> None:
    by_name = {"Account": {"shardType": "account", "keys": [["Name"]]}}
    first = await world.connect(SALESFORCE, connection_id="sf-a", entity_mappings=by_name)
    second = await world.connect(
        SALESFORCE, connection_id="sf-b", entity_mappings=by_name, dedup_strategy=DedupStrategy.COMPOSITE_KEY
    )
    await world.pull(first)
    matched = await world.pull(second)
    records = len(live_ids(world.sandbox, SALESFORCE))
    assert (matched.counts.duplicates, matched.counts.created) == (records, 0)
    gone = live_ids(world.sandbox, SALESFORCE)[0]
    world.clock.advance(120)
    world.sandbox.delete("salesforce", ids=[gone])

    await world.pull(first)
    shard = await world.shard_of(first, gone)
    assert shard["deleted"] is False
    assert (shard["sync"]["sf-a"]["deleted"], shard["sync"]["sf-b"]["deleted"]) == (True, False)

    last = await world.pull(second)
    assert last.counts.deleted == 1
    assert (await world.shard_of(second, gone))["deleted"] is True


async def test_a_record_that_cannot_be_mapped_is_counted_and_reported_and_the_page_goes_on(world: World) -> None:
    # AnnualRevenue is 10,000 * (i mod 97): only the first seeded Account's (0) is a boolean.
    mapping = {
        "Account": {
            "shardType": "account",
            "fields": {"Name": "name", "AnnualRevenue": {"field": "revenue", "type": "boolean"}},
        }
    }
    connection = await world.connect(SALESFORCE, entity_mappings=mapping)
    ids = live_ids(world.sandbox, SALESFORCE)

    result = await world.pull(connection)

    assert result.status == "succeeded"
    assert (result.counts.fetched, result.counts.created, result.counts.failed) == (len(ids), 1, len(ids) - 1)
    assert [failure.external_id for failure in result.failures] == ids[1:]
    assert result.failures[0].entity_type == "Account"
    assert "AnnualRevenue → revenue" in result.failures[0].reason
    (shard,) = await world.docs("shards")
    assert shard["data"] == {"name": "Account 0", "revenue": False}


async def test_a_field_changed_on_both_sides_is_a_conflict_and_disjoint_changes_merge(world: World) -> None:
    connection = await world.connect(
        SALESFORCE, conflict_strategy=ConflictStrategy.FIELD_MERGE, field_merge_fallback=ConflictStrategy.MANUAL
    )
    await world.pull(connection)
    first = live_ids(world.sandbox, SALESFORCE)[0]
    shard = await world.shard_of(connection, first)
    local = {**shard, "data": {**shard["data"], "Name": "Renamed here"}, "fieldSources": {"Name": "local"}}
    await world.store.replace("shards", local, if_match=shard["_etag"])
    world.clock.advance(120)
    world.sandbox.edit("salesforce", ids=[first])

    result = await world.pull(connection)

    # The timestamps changed on the provider only and are taken; the name changed on both sides and waits.
    assert (result.counts.conflicts, result.counts.updated) == (1, 1)
    (conflict,) = await world.docs("conflicts")
    assert (conflict["field"], conflict["localValue"], conflict["status"]) == ("Name", "Renamed here", "open")
    assert conflict["remoteValue"].endswith("(edited)")
    merged = await world.shard_of(connection, first)
    assert merged["data"]["Name"] == "Renamed here"
    assert merged["data"]["SystemModstamp"] != shard["data"]["SystemModstamp"]
