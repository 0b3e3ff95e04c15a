"""Pulls propagate: a saved page's created, updated and deleted records become outbound changes for their shard's
other push targets, with deterministic message ids (a page saved again sends nothing new), and nothing goes out for a
shard type no other connection pushes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from adapters.engine import HttpEngine
from adapters.providers import build_registry
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock
from castiel.models import ChangeOrigin, Connection, Operation, OutboundChange, Provider, SyncCounts, SyncMode
from castiel.sandbox.demo import GITHUB_TASKS, NOTION_TASKS
from castiel.sync.dedup import RecordAction
from castiel.sync.fanout import PullFanout
from castiel.sync.mapping import compile_mappings
from castiel.sync.pipeline import PageReport
from castiel.sync.pull import PageSaved
from castiel.sync.sharding import RecordOutcome
from castiel.sync.targets import TargetFinder
from tests.unit.adapters.support import StaticAuth, limiter

QUEUE = "sync-outbound"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
GITHUB = compile_mappings(GITHUB_TASKS, {"issue": "issue"})


class Issue:
    entity_type = "issue"
    updated_at = T0

    def __init__(self, number: int, *, deleted: bool = False) -> None:
        self.external_id = str(1_000_000_000 + number)
        self.deleted = deleted
        self.data = {"number": number, "title": f"Issue {number}", "state": "open"}


def outcome(number: int, action: RecordAction, *, deleted: bool = False) -> RecordOutcome:
    [record] = GITHUB.map_record(Issue(number, deleted=deleted))
    return RecordOutcome(record, action, f"shard-{number}", {"title": f"Issue {number}"})


def saved(*outcomes: RecordOutcome, resumed: bool = False) -> PageSaved:
    report = PageReport(list(outcomes))
    return PageSaved("t1", "gh", "task-gh", "issue", 1, "cursor", report, SyncCounts(), resumed=resumed)


@dataclass
class Fanned:
    store: SqliteDocumentStore
    queue: SqliteMessageQueue
    fanout: PullFanout


@pytest.fixture
async def world(tmp_path: Path, redis_client: aioredis.Redis) -> AsyncIterator[Fanned]:
    store = SqliteDocumentStore(tmp_path / "store.db")
    queue = SqliteMessageQueue(tmp_path / "queue.db")
    for connection_id, provider, mapping in (
        ("gh", Provider.GITHUB, GITHUB_TASKS),
        ("nt", Provider.NOTION, NOTION_TASKS),
    ):
        connection = Connection(id=connection_id, tenant_id="t1", integration_id=provider.value, provider=provider,
                                entity_mappings=mapping, sync_direction=SyncMode.BIDIRECTIONAL)  # fmt: skip
        await store.create(Connection.container, connection.to_doc())
    async with httpx.AsyncClient() as http:  # never used: a fan-out reads connections, it calls no provider
        registry = build_registry(HttpEngine(http, limiter(redis_client, ManualClock()), StaticAuth()))
        yield Fanned(store, queue, PullFanout(queue, QUEUE, TargetFinder(store, registry)))
    await queue.close()
    await store.close()


async def queued(queue: SqliteMessageQueue) -> list[OutboundChange]:
    return [OutboundChange.from_json_bytes(message.body) for message in await queue.peek(QUEUE, max_messages=50)]


async def test_created_updated_and_deleted_records_go_out_once(world: Fanned) -> None:
    queue, fanout = world.queue, world.fanout
    page = saved(
        outcome(1, RecordAction.CREATE),
        outcome(2, RecordAction.UPDATE),
        outcome(3, RecordAction.UNCHANGED),
        outcome(4, RecordAction.DELETE, deleted=True),
    )

    await fanout(page)
    await fanout(page)  # the page saved again after a crash before its checkpoint

    changes = await queued(queue)
    assert [(change.entity_id, change.operation) for change in changes] == [
        ("shard-1", Operation.CREATE),
        ("shard-2", Operation.UPDATE),
        ("shard-4", Operation.DELETE),
    ]
    assert {(change.origin, change.connection_id, change.entity_type) for change in changes} == {
        (ChangeOrigin.PULL, "gh", "task")
    }
    assert changes[0].external_id == "1000000001"


async def test_a_resumed_page_sends_every_record_in_a_shard_under_the_ids_a_first_attempt_used(world: Fanned) -> None:
    await world.fanout(saved(outcome(1, RecordAction.CREATE), outcome(2, RecordAction.UPDATE)))

    # The same page after a crash before its checkpoint: saved already, so nothing is found to have changed.
    await world.fanout(
        saved(
            outcome(1, RecordAction.UNCHANGED),
            outcome(2, RecordAction.UNCHANGED),
            outcome(3, RecordAction.UNCHANGED),
            outcome(4, RecordAction.UNCHANGED, deleted=True),
            outcome(5, RecordAction.IGNORE, deleted=True),  # a deletion of a record no shard holds
            resumed=True,
        )
    )

    changes = await queued(world.queue)
    assert [(change.entity_id, change.operation) for change in changes] == [
        ("shard-1", Operation.CREATE),
        ("shard-2", Operation.UPDATE),
        ("shard-3", Operation.UPDATE),
        ("shard-4", Operation.DELETE),
    ]


async def test_a_shard_type_without_another_push_target_sends_nothing(world: Fanned) -> None:
    store, queue, fanout = world.store, world.queue, world.fanout
    doc = await store.read(Connection.container, "nt", "t1")
    await store.replace(Connection.container, {**doc, "syncDirection": "pull"}, if_match=doc["_etag"])

    await fanout(saved(outcome(1, RecordAction.CREATE)))

    assert await queued(queue) == []
