"""A webhook's change into its shard: the record read from its origin as it is now, then merged as a pulled one is.

Webhooks often carry only ids (Notion's always do), and what they do carry is shaped differently from the API's
records (GitHub sends label names where its issues API sends label objects), so the record is read through the
origin's adapter (``BaseAdapter.read``) and goes through the page pipeline of a pull: mapping, dedup (a record equal
to what we last pushed there is our own write coming back: dropped), the connection's conflict strategy, batched
saves. Reading the current state also makes the order of deliveries irrelevant: an older event finds the newer
record, already merged. A record the provider no longer has is a deletion.

A record the hub does not know yet may be one we just created there, reported before the create's answer was
saved: its pending-create document (``echo.adoption_key``) links it to its shard first (``PushLedger.adopt``).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import timedelta

from adapters.base import AdapterRegistry
from adapters.records import Record
from castiel.clock import Clock, system_clock
from castiel.errors import InvalidMessage
from castiel.models import Connection, OutboundChange
from castiel.ports import DocumentStore
from castiel.sync.conflicts import ConflictSettings
from castiel.sync.dedup import DedupContext, link_id
from castiel.sync.echo import adoption_key, pending_id
from castiel.sync.ledger import LINKS, PushLedger
from castiel.sync.mapping import ConnectionMapping
from castiel.sync.pipeline import PagePipeline
from castiel.sync.results import Phase
from castiel.sync.sharding import RecordOutcome
from castiel.sync.targets import Target, TargetFinder


class _Untimed:
    """A webhook's one-record page is not timed phase by phase."""

    def phase(self, phase: Phase) -> AbstractAsyncContextManager[None]:
        return nullcontext()


class Ingest:
    """Merges webhook changes into shards."""

    def __init__(
        self,
        store: DocumentStore,
        adapters: AdapterRegistry,
        finder: TargetFinder,
        ledger: PushLedger,
        *,
        retention: timedelta | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._adapters = adapters
        self._finder = finder
        self._ledger = ledger
        self._retention = retention
        self._clock = clock

    async def apply(self, change: OutboundChange, source: Connection) -> RecordOutcome | None:
        """Merge ``change`` of ``source``; what its record did to its shard, None for a kind of record the connection
        does not sync (a GitHub comment on an issues connection)."""
        mapping = self._finder.mapping(source)
        entity_type = synced_type(change.entity_type, mapping, source)
        if entity_type is None:
            return None
        if not change.external_id:
            raise InvalidMessage(f"a {change.entity_type} change of connection {source.id} without its external id")
        adapter = self._adapters.get(source.provider)
        record = await adapter.read(source, entity_type, change.external_id, change.changes)
        if record is None:
            record = Record(entity_type, change.external_id, change.timestamp, True, {})
        return await self._save(source, mapping, record)

    async def merge(self, connection: Connection, record: Record) -> str | None:
        """Merge a record read from ``connection`` (a push found it changed there); its fingerprint when the shard
        changed."""
        outcome = await self._save(connection, self._finder.mapping(connection), record)
        return outcome.record.fingerprint if outcome is not None and outcome.changed else None

    async def _save(self, source: Connection, mapping: ConnectionMapping, record: Record) -> RecordOutcome | None:
        await self._adopt(source, mapping, record)
        pipeline = PagePipeline(
            self._store,
            DedupContext(source.tenant_id, source.id, source.dedup_strategy, mapping, source.fuzzy_threshold),
            ConflictSettings.of(source),
            retention=self._retention,
            clock=self._clock,
        )
        report = await pipeline.save([record], _Untimed())
        if report.failures:
            raise InvalidMessage(report.failures[0].reason)
        return report.outcomes[0] if report.outcomes else None

    async def _adopt(self, source: Connection, mapping: ConnectionMapping, record: Record) -> None:
        if record.deleted:
            return
        try:
            mapped = mapping.map_record(record)
        except InvalidMessage:
            return  # the pipeline reports it
        entity = mapping.entity(record.entity_type)
        link = link_id(source.id, record.entity_type, record.external_id)
        pending = pending_id(source.id, record.entity_type, adoption_key(entity, mapped[0].fields))
        found = await self._store.read_many(LINKS, source.tenant_id, [link, pending])
        if link in found or pending not in found:
            return
        await self._ledger.adopt(source.tenant_id, found[pending], Target(source, entity), record.external_id,
                                 record.data)  # fmt: skip


def synced_type(entity_type: str, mapping: ConnectionMapping, connection: Connection) -> str | None:
    """The connection's own spelling of ``entity_type`` (a webhook may lower-case Salesforce's ``Account``), None
    when the connection does not sync it."""
    wanted = entity_type.casefold()
    for known in mapping.entity_types:
        if known.casefold() == wanted and (not connection.entity_types or known in connection.entity_types):
            return known
    return None
