"""One page of provider records into shards: transform → dedup → shard → conflicts → save, as a handful of batched
store calls whatever the page's size.

::

    items  = mapping.map_record(each record)               # a record that cannot be mapped is counted, not fatal
    kept   = dedup.fold_page(items)                        # duplicates inside the page
    links  = read_many("external-ids", …)                  # one read
    found  = query("shards", …) per natural key            # composite, content-hash and fuzzy dedup only
    shards = read_many("shards", …)                        # one read: only records that changed
    writes = sharding.build_page(dedup.decide(…), …)       # merged under the connection's conflict rule
    write_batch("shards"), write_batch("conflicts"), write_batch("external-ids")    # links last

Every write is conditional (a create, or a replace under the etag read), so a concurrent writer — another worker on
an overlapping page, an operator resolving a conflict, an outbound push — makes a batch fail rather than be
overwritten; the page is then redone from fresh reads (``MAX_ATTEMPTS`` times). Shard ids are deterministic, so a
redo, or a redelivery after a crash between the batches, finds what an earlier attempt committed: the first attempt
does not look for such leftovers (a create that meets one collides), the redo does.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import AlreadyExists, InvalidMessage, PreconditionFailed, RetryableError
from castiel.models import DedupStrategy, RecordFailure, SyncCounts
from castiel.ports import BatchOperation, DocumentStore, Query
from castiel.sync.conflicts import ConflictSettings
from castiel.sync.dedup import (
    Decision,
    DedupContext,
    decide,
    duplicate_candidates,
    fold_page,
    link_ids,
    match_queries,
    shard_ids,
)
from castiel.sync.mapping import MappedRecord, SourceRecord
from castiel.sync.results import Phase
from castiel.sync.sharding import PageWrites, RecordOutcome, build_page
from castiel.telemetry import log_event

MAX_ATTEMPTS = 3
"""Tries of a page whose batch lost a race to another writer, each from fresh reads."""

SHARDS, CONFLICTS, LINKS = "shards", "conflicts", "external-ids"


class PhaseTimer(Protocol):
    """Where a page's phases are timed (``results.ResultRecorder``)."""

    def phase(self, phase: Phase) -> AbstractAsyncContextManager[None]:
        """Time the block as ``phase``."""
        ...


@dataclass(slots=True)
class PageReport:
    """What a page did: one outcome per record that reached a shard (``RecordOutcome.changed`` holds the fields
    the shard's other connections are to be told), the counts, and the records that could not be mapped."""

    outcomes: list[RecordOutcome] = field(default_factory=list)
    counts: SyncCounts = field(default_factory=SyncCounts)
    failures: list[RecordFailure] = field(default_factory=list)


class PagePipeline:
    """One connection's pages into shards, in the tenant's partition of ``store``."""

    def __init__(
        self,
        store: DocumentStore,
        ctx: DedupContext,
        settings: ConflictSettings,
        *,
        retention: timedelta | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._ctx = ctx
        self._settings = settings
        self._retention = retention
        self._clock = clock

    async def save(self, records: Sequence[SourceRecord], timer: PhaseTimer) -> PageReport:
        """Map, dedup, merge and save one page of ``records``."""
        report = PageReport()
        report.counts.fetched = len(records)
        async with timer.phase(Phase.TRANSFORM):
            items = self._transform(records, report.failures)
            kept, folded = fold_page(items)
        report.counts.failed = len(report.failures)
        if not kept:
            return report
        last: Exception | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                writes = await self._apply(kept, timer, recover=attempt > 1)
            except (PreconditionFailed, AlreadyExists) as exc:
                last = exc
                log_event("sync.page_redone", connection_id=self._ctx.connection_id, attempt=attempt, error=str(exc))
                continue
            report.outcomes = writes.outcomes
            counts = writes.counts
            counts.fetched, counts.failed = report.counts.fetched, report.counts.failed
            counts.duplicates += folded
            report.counts = counts
            return report
        raise RetryableError(f"a page of connection {self._ctx.connection_id} kept losing races: {last}")

    def _transform(self, records: Sequence[SourceRecord], failures: list[RecordFailure]) -> list[MappedRecord]:
        mapping = self._ctx.mapping
        items: list[MappedRecord] = []
        for record in records:
            try:
                items += mapping.map_record(record)
            except InvalidMessage as exc:
                failures.append(
                    RecordFailure(entity_type=record.entity_type, external_id=record.external_id, reason=str(exc))
                )
        return items

    async def _apply(self, kept: list[MappedRecord], timer: PhaseTimer, *, recover: bool) -> PageWrites:
        ctx, store = self._ctx, self._store
        async with timer.phase(Phase.DEDUP):
            links = await store.read_many(LINKS, ctx.tenant_id, link_ids(kept, ctx))
            found = [doc for query in match_queries(kept, links, ctx) for doc in await self._query_all(query)]
            wanted = shard_ids(kept, links, ctx)
            if not recover:
                # A shard an unlinked record would create exists only if an attempt died between its shard and link
                # batches: rather than read thousands of absent ids for that, its create collides and the redo reads.
                linked = {link["shardId"] for link in links.values()}
                wanted = [shard for shard in wanted if shard in linked]
            shards = await store.read_many(SHARDS, ctx.tenant_id, wanted) if wanted else {}
            decisions = decide(kept, links, [*shards.values(), *found], ctx)
        now = now_utc(self._clock)
        async with timer.phase(Phase.SHARD):
            writes = build_page(decisions, links, ctx, self._settings, now, retention=self._retention)
        async with timer.phase(Phase.CONFLICTS):
            candidates = self._candidates(decisions, found, now)
            # Counted with the field conflicts: both are what ``castiel conflicts list`` shows for review.
            writes.counts.conflicts += len(candidates)
            conflicts = writes.conflicts + candidates
        async with timer.phase(Phase.SAVE):
            for container, operations in ((SHARDS, writes.shards), (CONFLICTS, conflicts), (LINKS, writes.links)):
                if operations:
                    await store.write_batch(container, ctx.tenant_id, operations)
        return writes

    def _candidates(
        self, decisions: list[Decision], found: list[dict[str, Any]], now: datetime
    ) -> list[BatchOperation]:
        """``fuzzy``: the duplicate candidates of the page's new shards, for a person to review."""
        if self._ctx.strategy is not DedupStrategy.FUZZY:
            return []
        return [BatchOperation.upsert(doc) for doc in duplicate_candidates(decisions, found, self._ctx, now)]

    async def _query_all(self, query: Query) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = await self._store.query(SHARDS, query)
            found += page.items
            if page.continuation is None:
                return found
            query = Query(query.filters, query.partition_key, query.order_by, query.limit, page.continuation)
