"""Local edits: an operator sets shard fields by hand (``castiel shards update``), and the change goes out like any
other — enqueued on ``sync-outbound`` with origin ``local``, pushed to every connection that syncs the shard type.

The edit is written first (etag-conditional, redone on a lost race), its fields stamped with the time and the source
``local`` (``conflicts.LOCAL``, which ``sourcePriority`` lists may rank), then enqueued. Setting a field to the value
it has changes nothing and sends nothing. Before anything is written, the edit is checked against the connections
that sync the shard type (``reach``): the result says which fields do not go out to which connection, and a field
that some connection owns read-only and none takes is refused (``ConfigError``), nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import ConfigError, NotFound, PermanentError, PreconditionFailed, RetryableError
from castiel.models import ChangeOrigin, Operation, OutboundChange, format_utc
from castiel.ports import DocumentStore, MessageQueue
from castiel.sync.canonical import fingerprint, same
from castiel.sync.conflicts import LOCAL
from castiel.sync.fanout import outgoing
from castiel.sync.ledger import SHARDS, WRITE_ATTEMPTS
from castiel.sync.reach import Reach, reach
from castiel.sync.targets import active_connections, syncing
from castiel.telemetry import log_event, new_correlation_id

_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class LocalEdit:
    """An edit as made: the shard as written (as read, when nothing changed), the fields whose value changed (and
    went to the queue), and where they go."""

    shard: dict[str, Any]
    changed: dict[str, Any]
    reach: Reach


class LocalEdits:
    """Writes local edits to shards and enqueues them."""

    def __init__(
        self, store: DocumentStore, queue: MessageQueue, queue_name: str, *, clock: Clock = system_clock
    ) -> None:
        self._store = store
        self._queue = queue
        self._queue_name = queue_name
        self._clock = clock

    async def update(self, tenant_id: str, shard_id: str, fields: Mapping[str, Any]) -> LocalEdit:
        """Set ``fields`` on the shard and enqueue the change. ``NotFound`` without the shard; ``PermanentError`` for
        a deleted one; ``ConfigError`` for a field no connection can take that one owns read-only."""
        for _ in range(WRITE_ATTEMPTS):
            try:
                shard = await self._store.read(SHARDS, shard_id, tenant_id)
            except NotFound:
                raise NotFound(f"shard {shard_id!r} of tenant {tenant_id!r} not found") from None
            if shard.get("deleted"):
                raise PermanentError(f"shard {shard_id} is deleted (a tombstone): it cannot be edited")
            data: dict[str, Any] = dict(shard.get("data") or {})
            changed = {name: value for name, value in fields.items() if not _same(data.get(name, _ABSENT), value)}
            if not changed:
                return LocalEdit(shard, {}, Reach((), (), {}))
            where = reach(changed, syncing(await active_connections(self._store, tenant_id), shard["shardType"]))
            if where.refused:
                raise ConfigError(_refusal(shard["shardType"], where))
            stamp = format_utc(now_utc(self._clock))
            data.update(changed)
            doc = {key: value for key, value in shard.items() if key not in ("_etag", "_ts")}
            doc.update(
                data=data,
                fieldVersions={**(shard.get("fieldVersions") or {}), **dict.fromkeys(changed, stamp)},
                fieldSources={**(shard.get("fieldSources") or {}), **dict.fromkeys(changed, LOCAL)},
                contentHash=fingerprint(data),
                updatedAt=stamp,
            )
            try:
                written = await self._store.replace(SHARDS, doc, if_match=shard.get("_etag"))
            except PreconditionFailed:
                continue
            await self._enqueue(written, changed)
            return LocalEdit(written, changed, where)
        raise RetryableError(f"shard {shard_id} kept changing while it was being edited; try again")

    async def _enqueue(self, shard: Mapping[str, Any], changed: Mapping[str, Any]) -> None:
        change = OutboundChange(
            integration_id=LOCAL,
            tenant_id=shard["tenantId"],
            entity_type=shard["shardType"],
            entity_id=shard["id"],
            operation=Operation.UPDATE,
            changes=dict(changed),
            timestamp=now_utc(self._clock),
            origin=ChangeOrigin.LOCAL,
            correlation_id=new_correlation_id(),
        )
        await self._queue.send(self._queue_name, [outgoing(change, change.message_id(f"local:{shard.get('_etag')}"))])
        log_event("outbound.local_edit", shard_id=shard["id"], fields=",".join(sorted(changed)))


def _refusal(shard_type: str, where: Reach) -> str:
    owned = "; ".join(f"{name} by {', '.join(owners)}" for name, owners in sorted(where.refused.items()))
    return (
        f"read-only on the connections that sync {shard_type} shards, and written by none: {owned}. A local value "
        "would never go out, and would hide the provider's own; nothing was changed"
    )


def _same(current: Any, value: Any) -> bool:
    return current is not _ABSENT and same(current, value)
