"""The outbound worker's service: one ``OutboundChange`` merged into its shard and pushed to every other connection
that syncs its shard type (DESIGN §3, §5 "The two-way model").

What a change is, by origin:

- ``webhook``: a provider reported a change of one record. Unless its connection only receives pushes, the record
  is read from that connection as it is now and merged into its shard (``ingest.py``: dedup, echo detection,
  conflicts under the connection's strategy);
- ``pull`` (a pull saved it, ``fanout.PullFanout``) and ``local`` (``castiel shards update``): already in the shard.

Then every target of the shard type (``targets.py``: the tenant's pushing connections, the change's own connection
never among them) is brought in step with the shard (``push.py``): only what it lacks, so a redelivered message, a
retry or our own write reported back writes nothing. A delete goes out when the change's connection's
``deletePolicy`` is ``propagate``.

Every change leaves a ``sync-results`` document (one per message: its retries rewrite it) with one entry per target
and a status: ``succeeded``, ``failed`` (a target failed for good: the reasons in ``error``), ``retrying``, or
``skipped`` (nothing to do: a connection that only receives, a kind of record it does not sync).
A target that failed retryably, or must wait (a rate limit, a create not yet confirmed), makes the whole message come
again — the targets already in step are then skipped, never pushed twice; a target's permanent failure is recorded
and does not hold the others back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from adapters.base import AdapterRegistry
from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import CastielError, Deferred, NotFound, PermanentError
from castiel.models import (
    ChangeOrigin,
    Connection,
    DeletePolicy,
    Operation,
    OutboundChange,
    SyncMode,
    SyncResult,
    TargetOutcome,
    TriggerKind,
    stable_id,
)
from castiel.ports import DocumentStore, MessageQueue, OutgoingMessage
from castiel.sync.conflicts import LOCAL
from castiel.sync.delivery import Delivery, DeliveryPolicy, decode_body
from castiel.sync.fanout import outgoing
from castiel.sync.ingest import Ingest
from castiel.sync.ledger import SHARDS, PushLedger
from castiel.sync.push import Pusher
from castiel.sync.targets import TargetFinder
from castiel.telemetry import correlation, log_event
from castiel.telemetry.outcomes import sync_finished
from castiel.telemetry.spans import annotate

_TRIGGERS = {ChangeOrigin.WEBHOOK: TriggerKind.WEBHOOK, ChangeOrigin.LOCAL: TriggerKind.MANUAL}


class OutboundSync:
    """Processes changes delivered on ``sync-outbound``."""

    def __init__(
        self,
        store: DocumentStore,
        adapters: AdapterRegistry,
        policy: DeliveryPolicy,
        queue: MessageQueue,
        queue_name: str,
        *,
        confirm_after: timedelta = timedelta(minutes=2),
        retention: timedelta | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._policy = policy
        self._queue = queue
        self._queue_name = queue_name
        self._clock = clock
        self._finder = TargetFinder(store, adapters)
        ledger = PushLedger(store, retention=retention, clock=clock)
        self._ingest = Ingest(store, adapters, self._finder, ledger, retention=retention, clock=clock)
        self._pusher = Pusher(adapters, ledger, self._ingest.merge, confirm_after=confirm_after, clock=clock)

    async def handle(self, delivery: Delivery) -> None:
        """Process one delivery under the retry policy of DESIGN §7."""
        change = decode_body(OutboundChange, delivery)
        annotate(tenant=change.tenant_id, connection=change.connection_id)
        result_id = stable_id("outbound-result", change.tenant_id, delivery.original_message_id)

        async def work(_: Delivery) -> None:
            await self.process(change, result_id)

        with correlation(change.correlation_id):
            await self._policy.run(delivery, work)

    async def process(self, change: OutboundChange, result_id: str) -> SyncResult:
        """Merge and push ``change``; its result document (``result_id``). Raises what the queue worker settles the
        message by: a retryable error or ``Deferred`` when a target must be tried again."""
        started = now_utc(self._clock)
        connections = await self._finder.connections(change.tenant_id)
        source = _source(change, connections)
        annotate(provider=source.provider.value if source else None)
        shard_id = change.entity_id
        if change.origin is ChangeOrigin.WEBHOOK:
            if source is None:
                raise PermanentError(f"connection {change.connection_id} of tenant {change.tenant_id} does not exist")
            if source.sync_direction is SyncMode.PUSH:
                return await self._finish(change, result_id, started, None, [], "ignored: the connection only receives")
            outcome = await self._ingest.apply(change, source)
            if outcome is None:
                return await self._finish(change, result_id, started, None, [], "ignored: not an entity type it syncs")
            shard_id = outcome.shard_id
        shard = await self._shard(change.tenant_id, shard_id)
        if shard is None:
            return await self._finish(change, result_id, started, shard_id, [], "no shard: nothing to push")
        source_id = change.connection_id
        # The record is gone when its source no longer has it, whatever the event said (an edit read as deleted).
        source_state = (shard.get("sync") or {}).get(source_id or "") or {}
        gone = bool(shard.get("deleted")) or bool(source_state.get("deleted"))
        propagate = source is not None and source.delete_policy is DeletePolicy.PROPAGATE
        outcomes: list[TargetOutcome] = []
        retry: CastielError | None = None
        merged: list[OutgoingMessage] = []
        for target in self._finder.targets(connections, shard["shardType"], source=source_id):
            pushed = await self._pusher.push(change.tenant_id, shard_id, target, gone=gone, propagate_deletes=propagate)
            outcomes.append(pushed.outcome)
            retry = _first_retry(retry, pushed.retry)
            if pushed.merged is not None:
                merged.append(_merged_change(change, target.connection, shard, pushed.merged))
        if merged:
            # A target's own change met on the way is in the shard now; its connection is the source of that one.
            await self._queue.send(self._queue_name, merged)
        result = await self._finish(change, result_id, started, shard_id, outcomes, None, retry)
        if retry is not None:
            raise retry
        if result.status == "failed":
            # A target refused the change for good: dead-lettered with the reason, so an operator sees it in the
            # queue and resubmits it once the cause is fixed (the targets already in step are then skipped).
            raise PermanentError(result.error or "a target refused the change")
        return result

    async def _shard(self, tenant_id: str, shard_id: str) -> dict[str, Any] | None:
        try:
            return await self._store.read(SHARDS, shard_id, tenant_id)
        except NotFound:
            return None

    async def _finish(
        self,
        change: OutboundChange,
        result_id: str,
        started: datetime,
        shard_id: str | None,
        outcomes: Sequence[TargetOutcome],
        note: str | None,
        retry: CastielError | None = None,
    ) -> SyncResult:
        failed = [outcome for outcome in outcomes if outcome.status == "failed"]
        status = "skipped" if note else "retrying" if retry is not None else "failed" if failed else "succeeded"
        result = SyncResult(
            id=result_id,
            tenant_id=change.tenant_id,
            connection_id=change.connection_id or LOCAL,
            status=status,
            started_at=started,
            finished_at=now_utc(self._clock),
            phase="complete",
            correlation_id=change.correlation_id,
            trigger=_TRIGGERS.get(change.origin, TriggerKind.SCHEDULE),
            shard_id=shard_id,
            targets=list(outcomes),
            error="; ".join(f"{outcome.connection_id}: {outcome.reason}" for outcome in failed) or note,
        )
        await self._store.upsert(SyncResult.container, result.to_doc())
        sync_finished("outbound", result)
        log_event(
            "outbound.change",
            level=logging.WARNING if failed else logging.INFO,
            origin=change.origin.value,
            operation=change.operation.value,
            shard_id=shard_id,
            status=status,
            pushed=sum(outcome.status == "pushed" for outcome in outcomes),
            targets=len(outcomes),
            error=result.error if failed else None,
        )
        return result


def _source(change: OutboundChange, connections: Sequence[Connection]) -> Connection | None:
    return next((connection for connection in connections if connection.id == change.connection_id), None)


def _merged_change(change: OutboundChange, connection: Connection, shard: dict[str, Any], key: str) -> OutgoingMessage:
    merged = OutboundChange(
        integration_id=connection.integration_id,
        tenant_id=change.tenant_id,
        connection_id=connection.id,
        entity_type=shard["shardType"],
        entity_id=shard["id"],
        external_id=(shard.get("externalIds") or {}).get(connection.id),
        operation=Operation.UPDATE,
        timestamp=change.timestamp,
        origin=ChangeOrigin.PULL,
        correlation_id=change.correlation_id,
    )
    return outgoing(merged, merged.message_id(f"merged:{key}"))


def _first_retry(current: CastielError | None, new: CastielError | None) -> CastielError | None:
    """The error the message is settled by: a retryable failure before a wait (it counts a retry), else the first."""
    if current is None:
        return new
    if isinstance(current, Deferred) and new is not None and not isinstance(new, Deferred):
        return new
    return current
