"""A dead letter an operator resubmits runs its failed task again: real SQLite queue and store, real Redis limiter,
the inbound service fed exactly as the dev host feeds the worker function."""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as aioredis

from adapters.base import AdapterRegistry
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock, now_utc
from castiel.devhost.convert import sdk_message_from
from castiel.errors import PermanentError
from castiel.models import Connection, Provider, SyncResult, SyncTask, SyncTaskMessage, TaskStatus
from castiel.ports import OutgoingMessage, Query
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import RateLimitPolicy
from castiel.sync.delivery import Delivery, DeliveryPolicy
from castiel.sync.inbound import InboundSync
from castiel.sync.resubmit import resubmit_dead_letters
from castiel.triggers import delivery_from

QUEUE = "sync-inbound"
TENANT = "acme"


@pytest.fixture
def inbound(
    store: SqliteDocumentStore, queue: SqliteMessageQueue, redis_client: aioredis.Redis, clock: ManualClock
) -> InboundSync:
    # No adapter installed: a pull that runs fails with its own reason, so whether the task ran shows in its result.
    limiter = RateLimiter(redis_client, RateLimitPolicy(), clock)
    policy = DeliveryPolicy(queue, max_retries=3, clock=clock)
    return InboundSync(store, AdapterRegistry(), limiter, policy, clock=clock)


async def failed_task_with_a_dead_letter(
    store: SqliteDocumentStore, queue: SqliteMessageQueue, clock: ManualClock
) -> SyncTask:
    """A task the worker failed for a bad configuration, and its message in the dead letters, as left by the host."""
    connection = Connection(id="gh", tenant_id=TENANT, integration_id="github", provider=Provider.GITHUB)
    await store.create(Connection.container, connection.to_doc())
    now = now_utc(clock)
    task = SyncTask(
        id="t1",
        tenant_id=TENANT,
        integration_id="github",
        connection_id="gh",
        status=TaskStatus.FAILED,
        next_run_at=now,
        status_changed_at=now,
        last_error="bad config",
    )
    stored = SyncTask.model_validate(await store.create(SyncTask.container, task.to_doc()))
    message = SyncTaskMessage(
        integration_id="github",
        tenant_id=TENANT,
        connection_id="gh",
        sync_mode=task.sync_mode,
        correlation_id="corr-1",
        enqueued_at=now,
        task_id="t1",
    )
    await queue.send(QUEUE, [OutgoingMessage(body=message.to_json_bytes(), message_id="m-1", correlation_id="corr-1")])
    (received,) = await queue.receive(QUEUE)
    await queue.dead_letter(QUEUE, received, reason="PermanentError: bad config", description="fix it")
    return stored


async def next_delivery(queue: SqliteMessageQueue) -> Delivery:
    (received,) = await queue.receive(QUEUE)
    return delivery_from(sdk_message_from(received), QUEUE)


async def results_of(store: SqliteDocumentStore) -> list[SyncResult]:
    page = await store.query(SyncResult.container, Query(partition_key=TENANT))
    return [SyncResult.model_validate(doc) for doc in page.items]


async def test_a_resubmitted_dead_letter_runs_its_failed_task_again(
    store: SqliteDocumentStore,
    queue: SqliteMessageQueue,
    clock: ManualClock,
    inbound: InboundSync,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await failed_task_with_a_dead_letter(store, queue, clock)
    assert await resubmit_dead_letters(queue, QUEUE, max_messages=10) == 1
    delivery = await next_delivery(queue)
    assert delivery.resubmitted

    clock.advance(60)
    with caplog.at_level(logging.INFO, logger="castiel"), pytest.raises(PermanentError, match="no adapter"):
        await inbound.handle(delivery)

    (result,) = await results_of(store)
    assert result.correlation_id == "corr-1"
    assert result.error == "no adapter is installed for provider 'github'"
    task = SyncTask.model_validate(await store.read(SyncTask.container, "t1", TENANT))
    assert task.last_result_id == result.id
    assert task.last_error == result.error
    assert task.status_changed_at == now_utc(clock)
    assert any(record.getMessage().startswith("inbound.resubmitted task_id=t1") for record in caplog.records)
    assert not any("inbound.skipped" in record.getMessage() for record in caplog.records)


async def test_the_same_message_not_resubmitted_leaves_the_failed_task_alone(
    store: SqliteDocumentStore, queue: SqliteMessageQueue, clock: ManualClock, inbound: InboundSync
) -> None:
    before = await failed_task_with_a_dead_letter(store, queue, clock)
    (dead,) = await queue.receive(QUEUE, sub_queue="dead_letter")
    await queue.send(QUEUE, [OutgoingMessage(body=dead.body, message_id="m-1:again", correlation_id="corr-1")])
    delivery = await next_delivery(queue)
    assert not delivery.resubmitted

    await inbound.handle(delivery)

    assert await results_of(store) == []
    after = SyncTask.model_validate(await store.read(SyncTask.container, "t1", TENANT))
    assert after == before
