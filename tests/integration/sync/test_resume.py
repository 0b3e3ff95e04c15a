"""Checkpoints: a pull that stops — a crash between a page's save and its checkpoint, a provider's pause — resumes
from the last saved page on the next delivery, and the shards end exactly as one uninterrupted pull leaves them."""

from __future__ import annotations

from typing import Any

import pytest

from castiel.clock import now_utc
from castiel.devhost.convert import sdk_message_from
from castiel.models import Connection, SyncResult, SyncTaskMessage, TaskStatus
from castiel.ports import OutgoingMessage, Query
from castiel.sync.pull import PageSaved
from castiel.triggers import delivery_from
from tests.integration.adapters.conftest import live_ids
from tests.integration.sync.world import RECORDS, SALESFORCE, SALESFORCE_BATCH, World

QUEUE = "sync-inbound"
PAGES = -(-RECORDS // SALESFORCE_BATCH)


class Crash(Exception):
    """The worker process dying: not an error the service knows, so nothing settles it."""


def comparable(shard: dict[str, Any]) -> dict[str, Any]:
    """A shard without what differs between two runs of the same pull (store bookkeeping)."""
    return {key: value for key, value in shard.items() if key not in ("_etag", "_ts")}


async def deliver(world: World, connection: Connection) -> SyncResult:
    """Queue the task's message and run the worker on what the queue delivers, as the host does."""
    message = SyncTaskMessage(
        integration_id="salesforce",
        tenant_id=connection.tenant_id,
        connection_id=connection.id,
        sync_mode="pull",
        correlation_id=f"corr-{connection.id}",
        enqueued_at=now_utc(),
        task_id=f"task-{connection.id}",
    )
    await world.queue.send(QUEUE, [OutgoingMessage(body=message.to_json_bytes(), message_id=f"m-{connection.id}")])
    await mark_queued(world, connection)
    (received,) = await world.queue.receive(QUEUE)
    await world.inbound.handle(delivery_from(sdk_message_from(received), QUEUE))
    await world.queue.complete(QUEUE, received)
    task = await world.task(connection)
    return SyncResult.model_validate(await world.store.read("sync-results", str(task.last_result_id), "t1"))


async def mark_queued(world: World, connection: Connection) -> None:
    task = await world.task(connection)
    if task.status is TaskStatus.PENDING:
        await world.store.replace("sync-tasks", {**task.to_doc(), "status": "queued"}, if_match=task.etag)


async def test_a_crash_after_a_save_resumes_from_the_last_checkpoint_on_redelivery(world: World) -> None:
    clean = await world.connect(SALESFORCE, tenant="t-clean")
    await world.pull(clean)
    connection = await world.connect(SALESFORCE)

    async def crash_on_the_second_page(saved: PageSaved) -> None:
        if saved.number == 2:
            raise Crash

    world.with_hook(crash_on_the_second_page)
    with pytest.raises(Crash):
        await deliver(world, connection)
    task = await world.task(connection)
    assert task.status is TaskStatus.RUNNING
    first_cursor = task.cursors["Account"]

    world.inbound = world.service()
    assert await world.queue.receive(QUEUE) == []  # the crashed worker still holds the peek-lock
    world.clock.advance(61)  # the crashed worker's peek-lock expires; the queue redelivers
    (redelivered,) = await world.queue.receive(QUEUE)
    assert redelivered.delivery_count == 2
    await world.inbound.handle(delivery_from(sdk_message_from(redelivered), QUEUE))

    task = await world.task(connection)
    assert task.status is TaskStatus.PENDING
    assert task.cursors["Account"] != first_cursor
    resumed = SyncResult.model_validate(await world.store.read("sync-results", str(task.last_result_id), "t1"))
    # Page 2 was saved, not checkpointed: it comes again, unchanged; nothing before it is fetched again.
    assert resumed.counts.fetched == RECORDS - SALESFORCE_BATCH
    assert resumed.counts.unchanged == SALESFORCE_BATCH
    assert resumed.counts.created == RECORDS - 2 * SALESFORCE_BATCH
    assert await shards_by_record(world, connection) == await shards_by_record(world, clean)


async def shards_by_record(world: World, connection: Connection) -> dict[str, dict[str, Any]]:
    """The connection's shards keyed by the record's external id, minus what differs between runs."""
    page = await world.store.query("shards", Query(partition_key=connection.tenant_id))
    return {
        doc["externalIds"][connection.id]: {
            "data": doc["data"],
            "fieldVersions": doc["fieldVersions"],
            "fingerprint": doc["sync"][connection.id]["pulledFingerprint"],
            "deleted": doc["deleted"],
        }
        for doc in page.items
    }


async def test_a_provider_pause_mid_pull_pauses_the_task_and_the_next_run_resumes(world: World) -> None:
    connection = await world.connect(SALESFORCE)

    async def quota_spent_after_the_first_page(saved: PageSaved) -> None:
        if saved.number == 1:
            world.sandbox.faults.configure("salesforce", next_statuses=[429])  # Salesforce's REQUEST_LIMIT_EXCEEDED

    world.with_hook(quota_spent_after_the_first_page)
    paused = await deliver(world, connection)

    # The second page was fetched while the first was saved (one page ahead): the quota runs out on the third.
    assert paused.status == "paused"
    assert (paused.pages, paused.counts.created) == (2, 2 * SALESFORCE_BATCH)
    task = await world.task(connection)
    assert task.status is TaskStatus.PAUSED
    assert task.paused_until is not None
    assert (task.paused_until - paused.started_at).total_seconds() == pytest.approx(3600, abs=1)
    assert task.last_error == f"provider paused the connection until {task.paused_until.isoformat()}"
    assert not await world.queue.peek(QUEUE)  # completed, not retried: the scheduler resumes the task

    world.clock.advance(3601)
    world.inbound = world.service()
    resumed = await world.pull(connection)
    assert resumed.status == "succeeded"
    rest = RECORDS - 2 * SALESFORCE_BATCH
    assert (resumed.counts.created, resumed.counts.fetched) == (rest, rest)
    assert len(await world.docs("shards")) == len(live_ids(world.sandbox, SALESFORCE)) == RECORDS
    assert PAGES > 2
