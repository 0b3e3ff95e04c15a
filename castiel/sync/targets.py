"""Where a shard's changes go: the tenant's connections that push its shard type, each with the entity type and
mapping it writes that shard type through.

A connection is a target of shard type ``S`` when it is active, syncs ``push`` or ``bidirectional``, and one of its
entity types maps onto ``S`` (its ``entityMappings``, or its adapter's defaults) — the first such type by name, among
the connection's ``entityTypes`` when it lists some. The connection a change came from is never a target of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adapters.base import AdapterRegistry
from castiel.errors import PermanentError
from castiel.models import Connection, SyncMode
from castiel.ports import DocumentStore, Filter, Query
from castiel.sync.mapping import ConnectionMapping, EntityMapping
from castiel.sync.pull import mapping_of
from castiel.sync.reach import Syncing

_PUSHING = frozenset({SyncMode.PUSH, SyncMode.BIDIRECTIONAL})
_MAPPINGS_CACHED = 512


@dataclass(frozen=True, slots=True)
class Target:
    """One connection a shard type is pushed to: the entity type and mapping it takes the shard through, the
    provider fields its updates need besides the external id (``BaseAdapter.address_fields``), and whether a delete
    leaves the record there (``BaseAdapter.delete_keeps_record``)."""

    connection: Connection
    mapping: EntityMapping
    address_fields: tuple[str, ...] = ()
    delete_keeps_record: bool = False

    @property
    def id(self) -> str:
        """The connection's id."""
        return self.connection.id

    @property
    def entity_type(self) -> str:
        """The provider entity type the shard type is written as."""
        return self.mapping.entity_type


class TargetFinder:
    """Finds targets in the store; compiled mappings are kept per connection version."""

    def __init__(self, store: DocumentStore, adapters: AdapterRegistry) -> None:
        self._store = store
        self._adapters = adapters
        self._mappings: dict[tuple[str, str | None], ConnectionMapping] = {}

    async def connections(self, tenant_id: str) -> list[Connection]:
        """The tenant's active connections (one query)."""
        return await active_connections(self._store, tenant_id)

    def mapping(self, connection: Connection) -> ConnectionMapping:
        """The connection's compiled entity mapping (``ConfigError`` when it does not compile)."""
        key = (connection.id, connection.etag)
        compiled = self._mappings.get(key)
        if compiled is None:
            compiled = mapping_of(connection, self._adapters.get(connection.provider))
            if len(self._mappings) >= _MAPPINGS_CACHED:
                self._mappings.clear()
            self._mappings[key] = compiled
        return compiled

    def target(self, connection: Connection, shard_type: str) -> Target | None:
        """``connection`` as a target of ``shard_type``; None when it does not push it."""
        if not pushes(connection):
            return None
        try:
            entity = shard_type_mapping(connection, self.mapping(connection), shard_type)
            adapter = self._adapters.get(connection.provider)
        except PermanentError:
            return None  # no adapter, or a mapping that no longer compiles: the connection's own pulls report it
        if entity is None:
            return None
        return Target(connection, entity, adapter.address_fields, adapter.delete_keeps_record)

    def targets(self, connections: Sequence[Connection], shard_type: str, *, source: str | None) -> list[Target]:
        """The targets of ``shard_type`` among ``connections``, ``source`` left out, by connection id."""
        found = [self.target(connection, shard_type) for connection in connections if connection.id != source]
        return sorted((target for target in found if target is not None), key=lambda target: target.id)


async def active_connections(store: DocumentStore, tenant_id: str) -> list[Connection]:
    """The tenant's active connections (one query)."""
    query = Query(filters=(Filter("status", "==", "active"),), partition_key=tenant_id)
    found: list[Connection] = []
    while True:
        page = await store.query(Connection.container, query)
        found += [Connection.model_validate(doc) for doc in page.items]
        if page.continuation is None:
            return found
        query = Query(query.filters, query.partition_key, continuation=page.continuation)


def pushes(connection: Connection) -> bool:
    """Whether changes are pushed to ``connection``: active, syncing ``push`` or ``bidirectional``."""
    return connection.sync_direction in _PUSHING and connection.status == "active"


def shard_type_mapping(connection: Connection, mapping: ConnectionMapping, shard_type: str) -> EntityMapping | None:
    """The entity mapping ``connection`` takes ``shard_type`` through: the first by name among its ``entityTypes``
    (all, when it lists none); None when it does not map the shard type."""
    for entity in mapping.for_shard_type(shard_type):
        if not connection.entity_types or entity.entity_type in connection.entity_types:
            return entity
    return None


def syncing(connections: Sequence[Connection], shard_type: str) -> list[Syncing]:
    """The ``connections`` that map ``shard_type``, each with its mapping and whether it is pushed to (a connection
    whose mapping no longer compiles is left out: its own pulls report it)."""
    found: list[Syncing] = []
    for connection in connections:
        try:
            entity = shard_type_mapping(connection, mapping_of(connection), shard_type)
        except PermanentError:
            continue
        if entity is not None:
            found.append(Syncing(connection.id, pushes(connection), entity))
    return found
