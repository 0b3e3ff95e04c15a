"""Changes already merged into shards, sent on to ``sync-outbound`` for the shards' other push targets.

Two sources: a pull (``PullFanout``, the inbound pipeline's page hook: every record a saved page created, updated or
deleted, so a tool without webhooks still syncs both ways) and a local edit (``castiel shards update``). Message ids
are deterministic — a redelivered page, or a page redone after a crash before its checkpoint, sends the same ids,
and the queue's duplicate detection drops them; were one to get through, the push finds its targets in step already.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from castiel.clock import Clock, now_utc, system_clock
from castiel.models import ChangeOrigin, Connection, Operation, OutboundChange, format_utc
from castiel.ports import MessageQueue, OutgoingMessage
from castiel.sync.dedup import Action
from castiel.sync.pull import PageSaved
from castiel.sync.sharding import RecordOutcome
from castiel.sync.targets import TargetFinder
from castiel.telemetry import current_correlation_id, log_event, new_correlation_id

_OPERATIONS = {Action.CREATE: Operation.CREATE, Action.UPDATE: Operation.UPDATE, Action.DELETE: Operation.DELETE}


def outgoing(change: OutboundChange, key: str) -> OutgoingMessage:
    """The queue message of ``change``; ``key`` makes its id (the same change, the same id)."""
    return OutgoingMessage(
        body=change.to_json_bytes(),
        message_id=change.message_id(key),
        correlation_id=change.correlation_id,
        application_properties={"origin": change.origin.value, "tenantId": change.tenant_id},
    )


class PullFanout:
    """The inbound pipeline's page hook that sends a saved page's changes on (one send per page)."""

    def __init__(
        self, queue: MessageQueue, queue_name: str, finder: TargetFinder, *, clock: Clock = system_clock
    ) -> None:
        self._queue = queue
        self._queue_name = queue_name
        self._finder = finder
        self._clock = clock

    async def __call__(self, saved: PageSaved) -> None:
        """Send the page's created, updated and deleted records whose shard type has another push target."""
        changed = [outcome for outcome in saved.report.outcomes if outcome.action in _OPERATIONS]
        if not changed:
            return
        connections = await self._finder.connections(saved.tenant_id)
        source = next((connection for connection in connections if connection.id == saved.connection_id), None)
        if source is None:
            return
        pushed = self._pushed_types(connections, {outcome.record.shard_type for outcome in changed}, source.id)
        correlation_id = current_correlation_id() or new_correlation_id()
        messages = [
            self._message(source, outcome, correlation_id) for outcome in changed if outcome.record.shard_type in pushed
        ]
        if messages:
            await self._queue.send(self._queue_name, messages)
            log_event("outbound.from_pull", connection_id=source.id, page=saved.number, changes=len(messages))

    def _pushed_types(self, connections: Sequence[Connection], shard_types: set[str], source: str) -> set[str]:
        return {kind for kind in shard_types if self._finder.targets(connections, kind, source=source)}

    def _message(self, source: Connection, outcome: RecordOutcome, correlation_id: str) -> OutgoingMessage:
        record = outcome.record
        when: datetime = record.updated_at or now_utc(self._clock)
        change = OutboundChange(
            integration_id=source.integration_id,
            tenant_id=source.tenant_id,
            connection_id=source.id,
            entity_type=record.shard_type,
            entity_id=outcome.shard_id,
            external_id=record.external_id,
            operation=_OPERATIONS[outcome.action],
            changes=dict(outcome.changed),
            timestamp=when,
            origin=ChangeOrigin.PULL,
            correlation_id=correlation_id,
        )
        # The record's state and time: a record changed back to an earlier state within the queue's duplicate
        # detection window is a new message, a page sent again is not.
        stamp = "-" if record.updated_at is None else format_utc(record.updated_at)
        return outgoing(change, f"pull:{record.fingerprint}:{stamp}")
