"""Two-way sync against the sandbox over real HTTP: GitHub issues and a Notion tasks database (and, where a third
target is needed, Slack messages) on one ``task`` shard type, the real inbound and outbound services, the real
webhook parsers, a real SQLite store and queue, one hand-moved clock."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from adapters.engine import HttpEngine
from adapters.providers import build_registry
from castiel.clock import now_utc
from castiel.models import (
    Connection,
    DeletePolicy,
    Operation,
    OutboundChange,
    Provider,
    SyncMode,
    SyncResult,
    SyncTask,
    WebhookRegistration,
)
from castiel.ports import Query
from castiel.sandbox.demo import GITHUB_TASKS, NOTION_TASKS
from castiel.sandbox.notion import DATABASE_ID
from castiel.sandbox.slack import CHANNEL_ID
from castiel.sandbox.webhooks import WebhookSender
from castiel.sync.delivery import Delivery, DeliveryPolicy
from castiel.sync.fanout import PullFanout
from castiel.sync.outbound import OutboundSync
from castiel.sync.targets import TargetFinder
from castiel.webhooks.events import parse_delivery
from tests.integration.sync.world import RETENTION, World
from tests.unit.adapters.support import Sleeps, StaticAuth

OUTBOUND = "sync-outbound"
TENANT = "t1"
CONFIRM_AFTER = timedelta(minutes=2)
SLACK_TASKS = {"message": {"shardType": "task", "fields": {"text": "title"}}}
SETTINGS: dict[Provider, dict[str, Any]] = {
    Provider.GITHUB: {"repository": "acme/widgets"},
    Provider.NOTION: {"databaseId": DATABASE_ID},
    Provider.SLACK: {"channel": CHANNEL_ID},
    Provider.GOOGLE: {},
    Provider.SALESFORCE: {},
}
MAPPINGS = {Provider.GITHUB: GITHUB_TASKS, Provider.NOTION: NOTION_TASKS, Provider.SLACK: SLACK_TASKS}
ENTITY = {
    Provider.GITHUB: "issue",
    Provider.NOTION: "page",
    Provider.SLACK: "message",
    Provider.GOOGLE: "event",
    Provider.SALESFORCE: "Account",
}
SECRET = "whsec-two-way"


@dataclass
class TwoWay:
    """The world of the inbound tests plus the outbound service, the pull fan-out and webhook deliveries."""

    world: World
    outbound: OutboundSync = field(init=False)
    connections: dict[str, Connection] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.outbound = self.outbound_service()
        finder = TargetFinder(self.world.store, self.registry())
        self.world.with_hook(PullFanout(self.world.queue, OUTBOUND, finder, clock=self.world.clock))

    def registry(self, http: Any = None) -> Any:
        engine = HttpEngine(http or self.world.http, self.world.limiter, StaticAuth("sandbox-token"),
                            clock=self.world.clock, sleep=Sleeps(self.world.clock))  # fmt: skip
        return build_registry(engine)

    def outbound_service(self, http: Any = None) -> OutboundSync:
        """An outbound service on the world's store and queue (over another HTTP client when given)."""
        world = self.world
        policy = DeliveryPolicy(world.queue, max_retries=3, clock=world.clock, rng=lambda: 0.0)
        return OutboundSync(world.store, self.registry(http), policy, world.queue, OUTBOUND,
                            confirm_after=CONFIRM_AFTER, retention=RETENTION, clock=world.clock)  # fmt: skip

    async def connect(self, provider: Provider, **fields: Any) -> Connection:
        """A bidirectional connection of ``provider`` mapped onto ``task`` (unless ``entity_mappings`` says
        otherwise), with its pull task."""
        case_id = provider.value
        connection = Connection(
            id=case_id,
            tenant_id=TENANT,
            integration_id=case_id,
            provider=provider,
            base_url=self.world.server.base_urls()[case_id],
            entity_types=[ENTITY[provider]],
            settings=SETTINGS[provider],
            entity_mappings=fields.pop("entity_mappings", None) or MAPPINGS[provider],
            sync_direction=fields.pop("sync_direction", SyncMode.BIDIRECTIONAL),
            delete_policy=fields.pop("delete_policy", DeletePolicy.TOMBSTONE_ONLY),
            **fields,
        )
        stored = await self.world.store.create(Connection.container, connection.to_doc())
        task = SyncTask(id=f"task-{case_id}", tenant_id=TENANT, integration_id=case_id, connection_id=case_id,
                        sync_mode=SyncMode.BIDIRECTIONAL, next_run_at=now_utc(self.world.clock))  # fmt: skip
        await self.world.store.create(SyncTask.container, task.to_doc())
        self.connections[case_id] = Connection.model_validate(stored)
        return self.connections[case_id]

    async def pull(self, provider: Provider) -> SyncResult:
        return await self.world.pull(self.connections[provider.value])

    def webhook(self, provider: Provider, operation: Operation, record: dict[str, Any]) -> list[OutboundChange]:
        """What the receiver enqueues for the sandbox's signed event about ``record`` (the real parser)."""
        registration = WebhookRegistration(id=f"wh-{provider.value}", tenant_id=TENANT, provider=provider,
                                           connection_id=provider.value, integration_id=provider.value)  # fmt: skip
        sender = WebhookSender(self.world.http, self.world.sandbox.signing_key, clock=self.world.clock)
        body, headers = sender.signed(provider.value, operation, record, secret=SECRET, audience="https://castiel",
                                      now=self.world.clock())  # fmt: skip
        parsed = parse_delivery(registration, headers, body, correlation_id="corr-webhook",
                                received_at=now_utc(self.world.clock))  # fmt: skip
        return parsed.changes

    async def deliver(self, change: OutboundChange, key: str = "once") -> None:
        """One delivery of ``change`` to the outbound worker, as the queue trigger would."""
        body = change.to_json_bytes()
        await self.outbound.handle(Delivery(OUTBOUND, body, change.message_id(key), change.correlation_id))

    async def drain(self) -> int:
        """Run every message waiting on ``sync-outbound`` (retry copies once the clock reaches them); how many."""
        handled = 0
        while batch := await self.world.queue.receive(OUTBOUND, max_messages=50):
            for message in batch:
                delivery = Delivery(OUTBOUND, message.body, message.message_id, message.correlation_id,
                                    message.application_properties, message.delivery_count)  # fmt: skip
                await self.outbound.handle(delivery)
                await self.world.queue.complete(OUTBOUND, message)
                handled += 1
        return handled

    async def sync_both(self) -> None:
        """Pull GitHub and Notion and push what each brought to the other, until nothing moves."""
        for provider in (Provider.GITHUB, Provider.NOTION):
            await self.pull(provider)
            await self.drain()

    def pushes(self, provider: str | None = None) -> list[tuple[str, str, str]]:
        """The sandbox's recorded writes: (provider, method, path)."""
        return [(p.provider, p.method, p.path) for p in self.world.sandbox.pushes if provider in (None, p.provider)]

    def push_bodies(self) -> Counter[str]:
        return Counter(json.dumps([p.provider, p.method, p.path, p.body], sort_keys=True)
                       for p in self.world.sandbox.pushes)  # fmt: skip

    async def shards(self) -> list[dict[str, Any]]:
        page = await self.world.store.query("shards", Query(partition_key=TENANT, order_by=(("id", "asc"),)))
        return page.items

    async def shard_of(self, provider: Provider, external_id: str) -> dict[str, Any]:
        return await self.world.shard_of(self.connections[provider.value], external_id)

    async def queued(self) -> int:
        return (await self.world.queue.stats(OUTBOUND)).active
