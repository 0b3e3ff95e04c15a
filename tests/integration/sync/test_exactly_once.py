"""Exactly-once effects on at-least-once queues: the same scenario — two pulls, their fan-out, webhooks from both
tools (one pair of them colliding on one task), a local edit, two more pulls — run with every inbound and outbound
message delivered once, then with every one delivered twice, the second copies out of order (after later messages,
in reverse). The shards, the conflicts and the writes the sandbox recorded are the same."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock, now_utc
from castiel.models import Operation, OutboundChange, Provider, SyncMode, SyncTask, SyncTaskMessage, TaskStatus
from castiel.ports import Query, ReceivedMessage
from castiel.sandbox.server import SandboxServer
from castiel.sync.delivery import Delivery
from castiel.sync.local import LocalEdits
from tests.integration.conftest import START
from tests.integration.sync.two_way import OUTBOUND, TENANT, TwoWay
from tests.integration.sync.world import World

GITHUB, NOTION = Provider.GITHUB, Provider.NOTION
RECORDS = 5
INBOUND = "sync-inbound"


@pytest.fixture(scope="module")
def sandbox_records() -> int:
    return RECORDS


class Deliveries:
    """Hands each message to its worker once, or twice with the copies after the batch, in reverse."""

    def __init__(self, two: TwoWay, twice: bool) -> None:
        self.two = two
        self.twice = twice
        self.count = 0

    async def pulls(self, *providers: Provider) -> None:
        deliveries = []
        for provider in providers:
            task = await self.two.world.task(self.two.connections[provider.value])
            doc = task.to_doc() | {"status": TaskStatus.QUEUED.value}
            await self.two.world.store.replace(SyncTask.container, doc, if_match=task.etag)
            message = SyncTaskMessage(integration_id=provider.value, tenant_id=TENANT, connection_id=provider.value,
                                      sync_mode=SyncMode.BIDIRECTIONAL, correlation_id=f"pull-{provider.value}",
                                      enqueued_at=now_utc(self.two.world.clock), task_id=task.id)  # fmt: skip
            deliveries.append(Delivery(INBOUND, message.to_json_bytes(), f"pull-{provider.value}"))
        await self._run(deliveries, self.two.world.inbound.handle)
        await self.drain()

    async def webhooks(self, changes: Sequence[OutboundChange]) -> None:
        deliveries = [
            Delivery(OUTBOUND, change.to_json_bytes(), change.message_id(f"webhook-{n}"), change.correlation_id)
            for n, change in enumerate(changes)
        ]
        await self._run(deliveries, self.two.outbound.handle)
        await self.drain()

    async def drain(self) -> None:
        queue = self.two.world.queue
        while batch := await queue.receive(OUTBOUND, max_messages=100):
            await self._run([_delivery(message) for message in batch], self.two.outbound.handle)
            for message in batch:
                await queue.complete(OUTBOUND, message)

    async def _run(self, deliveries: list[Delivery], handle: Any) -> None:
        for delivery in deliveries:
            await handle(delivery)
        if self.twice:
            for delivery in reversed(deliveries):
                await handle(delivery)
        self.count += len(deliveries) * (2 if self.twice else 1)


def _delivery(message: ReceivedMessage) -> Delivery:
    return Delivery(OUTBOUND, message.body, message.message_id, message.correlation_id,
                    message.application_properties, message.delivery_count)  # fmt: skip


async def scenario(two: TwoWay, twice: bool) -> int:
    deliver = Deliveries(two, twice)
    for provider in (GITHUB, NOTION):
        await two.connect(provider)
    await deliver.pulls(GITHUB, NOTION)

    sandbox, clock = two.world.sandbox, two.world.clock
    clock.advance(60)
    collide = await two.shard_of(GITHUB, "1000000003")
    [edited] = sandbox.edit("github", ids=["1000000001"])
    [renamed] = sandbox.edit("github", ids=["1000000003"])
    sandbox.edit("notion", ids=[collide["externalIds"]["notion"]])
    [collided] = sandbox.edit("notion", ids=[collide["externalIds"]["notion"]])
    other = await two.shard_of(GITHUB, "1000000002")
    [page] = sandbox.edit("notion", ids=[other["externalIds"]["notion"]])
    changes = [
        *two.webhook(GITHUB, Operation.UPDATE, edited),
        *two.webhook(GITHUB, Operation.UPDATE, renamed),
        *two.webhook(NOTION, Operation.UPDATE, collided),
        *two.webhook(NOTION, Operation.UPDATE, page),
    ]
    await deliver.webhooks(changes)

    clock.advance(60)
    edits = LocalEdits(two.world.store, two.world.queue, OUTBOUND, clock=clock)
    await edits.update(TENANT, other["id"], {"title": "Renamed by hand", "estimate": 8})
    await deliver.drain()
    if twice:
        await deliver.drain()  # a local edit enqueued twice is one message (duplicate detection)

    clock.advance(60)
    await deliver.pulls(GITHUB, NOTION)
    return deliver.count


async def state(two: TwoWay) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Counter[str]]:
    def plain(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{key: value for key, value in doc.items() if not key.startswith("_")} for doc in docs]

    conflicts = await two.world.store.query("conflicts", Query(partition_key=TENANT, order_by=(("id", "asc"),)))
    return plain(await two.shards()), plain(conflicts.items), two.push_bodies()


async def test_every_message_delivered_twice_has_the_effects_of_one_delivery(
    world: World, server: SandboxServer, module_clock: ManualClock, tmp_path: Path
) -> None:
    once = TwoWay(world)
    single = await scenario(once, twice=False)
    expected = await state(once)

    module_clock.value = START
    server.sandbox.reset()
    store = SqliteDocumentStore(tmp_path / "twice-store.db", clock=module_clock)
    queue = SqliteMessageQueue(tmp_path / "twice-queue.db", clock=module_clock)
    try:
        twice = TwoWay(World(server, store, queue, module_clock, world.http, world.limiter))
        doubled = await scenario(twice, twice=True)
        shards, conflicts, pushes = await state(twice)
    finally:
        await queue.close()
        await store.close()

    assert doubled == 2 * single
    assert sum(expected[2].values()) > 2 * RECORDS  # creates both ways, then the edits
    assert len(expected[1]) >= 1  # the collision on one task
    assert pushes == expected[2]
    assert conflicts == expected[1]
    assert shards == expected[0]
