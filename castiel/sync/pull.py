"""The pull of one sync task: rate check, auth, then each entity type's pages since its checkpoint, every page saved
through the page pipeline and checkpointed before the next is taken.

The next page is fetched while the current one is being saved (one page ahead, never more: memory stays flat
however many records a pull brings). Its cursor is checkpointed only after the page before it, so a crash or
redelivery resumes from the last saved page: no record is skipped, and a page saved but not yet checkpointed is
merely found unchanged when it comes again.

After a page is saved and before it is checkpointed, every ``PageHook`` is awaited with a ``PageSaved``: each
record's ``RecordOutcome`` (the fields whose value changed, for the shard's other connections) — the seam where
outbound fan-out plugs in — and the run's totals so far, for progress displays. A hook that fails there leaves the
page saved but not checkpointed; so on a resumed run (``PullOptions.resumed``) the first page of each entity type is
marked ``PageSaved.resumed``: it may be that page again, its records unchanged now but never handed to the hooks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar, cast

from adapters.base import AdapterRegistry, BaseAdapter
from adapters.providers import ADAPTER_TYPES
from castiel.clock import Clock, system_clock
from castiel.errors import ConfigError
from castiel.models import Connection, SyncCounts
from castiel.ports import DocumentStore
from castiel.ratelimit.limiter import RateLimiter, raise_for_check
from castiel.ratelimit.policy import PROVIDER_LEVEL
from castiel.sync.checkpoints import RunningTask
from castiel.sync.conflicts import ConflictSettings
from castiel.sync.dedup import DedupContext
from castiel.sync.mapping import ConnectionMapping, compile_mappings
from castiel.sync.pipeline import PagePipeline, PageReport
from castiel.sync.results import Phase, ResultRecorder

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PullOptions:
    """What to pull: one entity type (None: all the connection syncs), and from the start instead of the
    checkpoints (``full``)."""

    entity_type: str | None = None
    full: bool = False
    resumed: bool = False
    """The task's last run may have stopped between saving a page and checkpointing it."""


@dataclass(frozen=True, slots=True)
class PageSaved:
    """A page saved into shards: which one (``number`` counts from 1 across the run), what it did, and the run's
    totals so far. ``resumed``: the first page of its entity type in a resumed run, which an earlier run may have
    saved without its hooks completing (its records then report ``unchanged``)."""

    tenant_id: str
    connection_id: str
    task_id: str
    entity_type: str
    number: int
    cursor: str | None
    report: PageReport
    totals: SyncCounts
    resumed: bool = False


PageHook = Callable[[PageSaved], Awaitable[None]]


def mapping_of(connection: Connection, adapter: type[BaseAdapter] | BaseAdapter | None = None) -> ConnectionMapping:
    """The connection's compiled entity mapping, checked against its provider's entity types (its adapter's, found
    by provider when not given); ``ConfigError`` naming every problem."""
    if adapter is None:
        adapter = next((kind for kind in ADAPTER_TYPES if kind.provider is connection.provider), None)
        if adapter is None:
            raise ConfigError(f"provider {connection.provider.value} has no adapter to check an entity mapping against")
    return compile_mappings(connection.entity_mappings, adapter.entity_types_of(connection))


class Puller:
    """Pulls a task's connection into shards."""

    def __init__(
        self,
        store: DocumentStore,
        adapters: AdapterRegistry,
        limiter: RateLimiter,
        *,
        retention: timedelta | None,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._adapters = adapters
        self._limiter = limiter
        self._retention = retention
        self._clock = clock

    async def pull(
        self,
        running: RunningTask,
        connection: Connection,
        recorder: ResultRecorder,
        options: PullOptions,
        hooks: Sequence[PageHook] = (),
    ) -> datetime | None:
        """Pull every page since the checkpoints; returns the end of the provider's pause when the connection is
        paused instead (nothing pulled)."""
        async with recorder.phase(Phase.RATE_CHECK):
            # A gate, not a call: each request is checked (and takes its slot) when the adapter makes it.
            check = await self._limiter.peek(
                tenant_id=connection.tenant_id,
                connection_id=connection.id,
                provider=connection.provider.value,
                operation="fetch",
            )
        if not check.allowed and check.level == PROVIDER_LEVEL:
            return check.reset_at
        raise_for_check(check)
        async with recorder.phase(Phase.AUTH):
            adapter = self._adapters.get(connection.provider)
            await adapter.open(connection)
        pipeline = PagePipeline(
            self._store,
            DedupContext(
                connection.tenant_id,
                connection.id,
                connection.dedup_strategy,
                mapping_of(connection, adapter),
                connection.fuzzy_threshold,
            ),
            ConflictSettings.of(connection),
            retention=self._retention,
            clock=self._clock,
        )
        for entity_type in entity_types_to_pull(connection, adapter, options.entity_type):
            cursor = None if options.full else running.cursor(entity_type)
            pages = read_ahead(adapter.fetch(connection, entity_type, cursor))
            first = True
            async with aclosing(pages):
                while True:
                    async with recorder.phase(Phase.FETCH):
                        page = await anext(pages, None)
                    if page is None:
                        break
                    report = await pipeline.save(page.records, recorder)
                    recorder.add(report.counts, report.failures, pages=1)
                    saved = PageSaved(
                        connection.tenant_id,
                        connection.id,
                        running.task.id,
                        entity_type,
                        recorder.pages,
                        page.cursor,
                        report,
                        recorder.counts.model_copy(),
                        resumed=options.resumed and first,
                    )
                    first = False
                    for hook in hooks:
                        await hook(saved)
                    await running.checkpoint(entity_type, page.cursor)
        return None


def entity_types_to_pull(connection: Connection, adapter: BaseAdapter, entity_type: str | None) -> list[str]:
    """The entity types a pull of ``connection`` reads: ``entity_type`` alone, else the connection's (all its
    provider's when it names none); ``ConfigError`` listing the known ones for an ``entity_type`` it does not have."""
    known = adapter.entity_types_of(connection)
    if entity_type is None:
        return connection.entity_types or list(known)
    if entity_type not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise ConfigError(
            f"{connection.provider.value} connection {connection.id} has no entity type {entity_type!r}"
            f" (it has: {listed})"
        )
    return [entity_type]


_END = object()


async def read_ahead(source: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """``source``'s items, the next one already being fetched while the caller works on the current one."""

    async def take() -> object:
        return await anext(source, _END)

    pending: asyncio.Task[object] = asyncio.create_task(take())
    try:
        while True:
            item = await pending
            if item is _END:
                return
            pending = asyncio.create_task(take())
            yield cast(T, item)
    finally:
        # The fetch ahead is abandoned: whatever ends it (the cancellation, its own error) is of no interest.
        pending.cancel()
        await asyncio.wait([pending])
        if not pending.cancelled():
            pending.exception()  # retrieved, so asyncio does not report it as lost
        closer = getattr(source, "aclose", None)
        if closer is not None:
            await closer()
