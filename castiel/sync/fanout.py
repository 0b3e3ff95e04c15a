"""Changes already merged into shards, sent on to ``sync-outbound`` for the shards' other push targets.

Two sources: a pull (``PullFanout``, the inbound pipeline's page hook: every record a saved page created, updated or
deleted, so a tool without webhooks still syncs both ways) and a local edit (``castiel shards update``).

A pull's fan-out runs after its page is saved and before the page is checkpointed. A run that dies in between, or
whose send fails, leaves the page saved and its changes unsent; the run that resumes re-fetches that page from the
last checkpoint and finds every record ``unchanged``. So the first page of each entity type in a resumed run
(``PageSaved.resumed``) goes out whole, changed or not: only that page can be in the window (every page before it
was checkpointed, which it is only after its fan-out). This was chosen over recording the pending fan-out in the
page's save batch, which would cost a write per page on every run (and a second one to clear it) to serve the rare
crash; the price here is some redundant messages, once per resumed run, and they are harmless:

- a pulled record's message id derives from the state saved in its shard — source connection, shard, record, its
  fingerprint and update time — never from what this attempt found (``created`` the first time, ``unchanged`` on
  the redo), so a message the dead run did send has the same id and the queue's duplicate detection drops it;
- one that gets through anyway (the detection window passed) is pushed against each target's last agreed state
  (``echo.plan_push``): a target in step is skipped, so nothing is written twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from castiel.clock import Clock, now_utc, system_clock
from castiel.models import ChangeOrigin, Connection, Operation, OutboundChange, format_utc, stable_id
from castiel.ports import MessageQueue, OutgoingMessage
from castiel.sync.dedup import RecordAction
from castiel.sync.pull import PageSaved
from castiel.sync.sharding import RecordOutcome
from castiel.sync.targets import TargetFinder
from castiel.telemetry import current_correlation_id, log_event, new_correlation_id

_OPERATIONS = {
    RecordAction.CREATE: Operation.CREATE,
    RecordAction.UPDATE: Operation.UPDATE,
    RecordAction.DELETE: Operation.DELETE,
}


def outgoing(change: OutboundChange, message_id: str) -> OutgoingMessage:
    """The queue message of ``change`` (deterministic ``message_id``: the same change, the same id)."""
    return OutgoingMessage(
        body=change.to_json_bytes(),
        message_id=message_id,
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
        """Send the page's created, updated and deleted records whose shard type has another push target (every
        record in a shard, changed or not, on the first page of a resumed run)."""
        changed = [outcome for outcome in saved.report.outcomes if _goes_out(outcome, saved.resumed)]
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
            operation=_operation(outcome),
            changes=dict(outcome.changed),
            timestamp=when,
            origin=ChangeOrigin.PULL,
            correlation_id=correlation_id,
        )
        # The record's state and time: a record changed back to an earlier state within the queue's duplicate
        # detection window is a new message, a page sent again is not, whatever its records were found to be.
        stamp = "-" if record.updated_at is None else format_utc(record.updated_at)
        message_id = stable_id("outbound-pull", source.tenant_id, source.id, outcome.shard_id, record.entity_type,
                               record.external_id, record.deleted, record.fingerprint, stamp)  # fmt: skip
        return outgoing(change, message_id)


def _goes_out(outcome: RecordOutcome, resumed: bool) -> bool:
    """A change, or (on a page a dead run may have saved unsent) any record that is in a shard."""
    return outcome.action in _OPERATIONS or (resumed and outcome.action is RecordAction.UNCHANGED)


def _operation(outcome: RecordOutcome) -> Operation:
    if outcome.action in _OPERATIONS:
        return _OPERATIONS[outcome.action]
    return Operation.DELETE if outcome.record.deleted else Operation.UPDATE
