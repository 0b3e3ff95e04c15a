"""The outbound worker's service: one ``OutboundChange`` pushed to the tenant's other connections (DESIGN §3).

The change goes to every connection of the tenant that syncs its entity type, except the one it came from (a change
is never echoed back to its source). Each push runs through the provider's adapter from the registry; a target whose
provider has no adapter installed fails permanently with that reason.
"""

from __future__ import annotations

from adapters.base import AdapterRegistry
from castiel.models import Connection, OutboundChange, SyncMode
from castiel.ports import DocumentStore, Filter, Query
from castiel.sync.delivery import Delivery, DeliveryPolicy, decode_body
from castiel.telemetry import correlation, log_event

_PUSHING = (SyncMode.PUSH.value, SyncMode.BIDIRECTIONAL.value)


class OutboundSync:
    """Pushes changes delivered on ``sync-outbound``."""

    def __init__(self, store: DocumentStore, adapters: AdapterRegistry, policy: DeliveryPolicy) -> None:
        self._store = store
        self._adapters = adapters
        self._policy = policy

    async def handle(self, delivery: Delivery) -> None:
        """Process one delivery under the retry policy of DESIGN §7."""
        change = decode_body(OutboundChange, delivery)
        with correlation(change.correlation_id):
            await self._policy.run(delivery, lambda _: self._push(change))

    async def targets(self, change: OutboundChange) -> list[Connection]:
        """The connections a change goes to: same tenant, syncing its entity type, pushing, not its source."""
        page = await self._store.query(
            Connection.container,
            Query(
                filters=(Filter("syncDirection", "in", _PUSHING), Filter("status", "==", "active")),
                partition_key=change.tenant_id,
            ),
        )
        connections = [Connection.model_validate(doc) for doc in page.items]
        return [
            conn
            for conn in connections
            if conn.id != change.connection_id and (not conn.entity_types or change.entity_type in conn.entity_types)
        ]

    async def _push(self, change: OutboundChange) -> None:
        targets = await self.targets(change)
        log_event("outbound.change", entity=change.entity_type, operation=change.operation.value, targets=len(targets))
        for connection in targets:
            self._adapters.get(connection.provider)
