"""The hub's record of what each target connection has of a shard: written after every push, and by the adoption of
a create whose provider reported it first.

Per target it keeps, on the shard, the external id (a create's at once, so a retry updates instead of creating again)
and the sync state (``echo.pushed_state``: snapshot, push fingerprint, pending create), and on the external-id link the
push fingerprint (or, for a delete the provider answered with the record it keeps, its ``deletedHash``) that lets
dedup recognise the echo. Shard first, link last, as the page pipeline writes them.
Every write is a read-modify-write under the etag read, redone on a lost race, touching only this target's entries:
pushes to several targets, pulls and webhooks interleave freely.

A create in progress leaves a pending-create document in ``external-ids`` keyed by its adoption key
(``echo.pending_id``): the record the provider then reports, unknown to the hub, is linked to its shard instead of
becoming a shard of its own (``PushLedger.adopt``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import timedelta
from typing import Any

from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import AlreadyExists, NotFound, PreconditionFailed, RetryableError
from castiel.models import ExternalIdLink, Operation, format_utc
from castiel.ports import DocumentStore
from castiel.sync.echo import PushPlan, pending_id, pushed_state
from castiel.sync.targets import Target
from castiel.telemetry import log_event

SHARDS, LINKS = "shards", "external-ids"
WRITE_ATTEMPTS = 5
"""Read-modify-write rounds of one document before the change is left to a retry."""
PENDING_TTL_SECONDS = 7 * 86_400

StateChange = Callable[[dict[str, Any]], dict[str, Any]]


class PushLedger:
    """Writes what targets have of shards into ``store``."""

    def __init__(
        self, store: DocumentStore, *, retention: timedelta | None = None, clock: Clock = system_clock
    ) -> None:
        self._store = store
        self._ttl = None if retention is None else max(1, int(retention.total_seconds()))
        self._clock = clock

    async def read(self, container: str, doc_id: str, tenant_id: str) -> dict[str, Any] | None:
        """A document, None when absent."""
        try:
            return await self._store.read(container, doc_id, tenant_id)
        except NotFound:
            return None

    async def mark_pending(self, shard: Mapping[str, Any], target: Target, plan: PushPlan) -> None:
        """Before a create: the target's state says one is under way (conditional on the shard's etag, so of two
        racing workers one creates), and the pending-create document waits for the provider's report of it.
        ``PreconditionFailed`` when the shard changed since it was read."""
        stamp = self._stamp()
        doc = _without_store_fields(shard)
        states = dict(doc.get("sync") or {})
        states[target.id] = {**(states.get(target.id) or {}), "entityType": plan.entity_type, "pendingCreateAt": stamp}
        doc["sync"] = states
        await self._store.replace(SHARDS, doc, if_match=shard.get("_etag"))
        if plan.adoption_key is not None:
            pending = {
                "id": pending_id(target.id, plan.entity_type, plan.adoption_key),
                "tenantId": shard["tenantId"],
                "kind": "pendingCreate",
                "connectionId": target.id,
                "entityType": plan.entity_type,
                "shardId": shard["id"],
                "createdAt": stamp,
                "ttl": PENDING_TTL_SECONDS,
            }
            await self._store.upsert(LINKS, pending)

    async def not_created(self, tenant_id: str, shard_id: str, target: Target, plan: PushPlan) -> None:
        """A create that certainly did not land: nothing is pending any more."""
        await self.update_state(tenant_id, shard_id, target.id, lambda state: _without(state, "pendingCreateAt"))
        await self._forget_pending(tenant_id, target, plan)

    async def gone(self, tenant_id: str, shard_id: str, target: Target) -> None:
        """The target no longer has the record (deleted there): nothing is pushed to it again."""
        stamp = self._stamp()
        await self.update_state(tenant_id, shard_id, target.id, lambda state: {**state, "deleted": True,
                                                                              "deletedAt": stamp})  # fmt: skip

    async def written(
        self, tenant_id: str, shard_id: str, target: Target, plan: PushPlan, external_id: str,
        answered: Mapping[str, Any] | None,
    ) -> None:  # fmt: skip
        """``plan`` landed on ``target`` as ``external_id`` (``answered``: the object the provider answered with)."""
        stamp = self._stamp()
        # What a delete answered with is what the provider reports from now on only where it keeps the record.
        telling = plan.operation is not Operation.DELETE or target.delete_keeps_record
        answer = answered if telling else None

        def record(doc: dict[str, Any]) -> None:
            states = dict(doc.get("sync") or {})
            states[target.id] = pushed_state(states.get(target.id) or {}, plan, target.mapping, answer, stamp)
            doc["sync"] = states
            doc["externalIds"] = {**(doc.get("externalIds") or {}), target.id: external_id}
            if plan.operation is Operation.DELETE and _held_nowhere(doc):
                doc.update(self._tombstone(stamp))

        doc = await self._rewrite_shard(tenant_id, shard_id, record, f"recording the push to connection {target.id}")
        if doc is None:
            return
        await self._link(tenant_id, shard_id, target, external_id, doc["sync"][target.id], plan.operation)
        if plan.operation is Operation.CREATE:
            await self._forget_pending(tenant_id, target, plan)

    async def adopt(
        self, tenant_id: str, pending: Mapping[str, Any], target: Target, external_id: str, data: Mapping[str, Any]
    ) -> None:
        """The record ``external_id`` that ``target`` reports (``data``) is the one a pending create made: link it to
        that create's shard."""
        plan = PushPlan(Operation.CREATE, target.entity_type, None)
        await self.written(tenant_id, str(pending["shardId"]), target, plan, external_id, data)
        await self._delete_pending(str(pending["id"]), tenant_id)
        log_event("outbound.create_adopted", connection_id=target.id, shard_id=pending["shardId"],
                  external_id=external_id)  # fmt: skip

    async def update_state(self, tenant_id: str, shard_id: str, target_id: str, change: StateChange) -> None:
        """Rewrite one connection's sync state on the shard."""

        def rewrite(doc: dict[str, Any]) -> None:
            states = dict(doc.get("sync") or {})
            states[target_id] = change(dict(states.get(target_id) or {}))
            doc["sync"] = states

        await self._rewrite_shard(tenant_id, shard_id, rewrite, f"recording connection {target_id}'s state")

    async def _rewrite_shard(
        self, tenant_id: str, shard_id: str, edit: Callable[[dict[str, Any]], None], doing: str
    ) -> dict[str, Any] | None:
        """The shard as ``edit`` left it, written under the etag it was read with (read and edited again after a
        lost race); None when the shard does not exist."""
        for _ in range(WRITE_ATTEMPTS):
            shard = await self.read(SHARDS, shard_id, tenant_id)
            if shard is None:
                return None
            doc = _without_store_fields(shard)
            edit(doc)
            try:
                await self._store.replace(SHARDS, doc, if_match=shard.get("_etag"))
            except PreconditionFailed:
                continue
            return doc
        raise RetryableError(f"shard {shard_id} kept changing while {doing}")

    async def _link(
        self, tenant_id: str, shard_id: str, target: Target, external_id: str, state: Mapping[str, Any],
        operation: Operation,
    ) -> None:  # fmt: skip
        link_id = ExternalIdLink.make_id(target.id, target.entity_type, external_id)
        for _ in range(WRITE_ATTEMPTS):
            found = await self.read(LINKS, link_id, tenant_id)
            doc = {
                **_without_store_fields(found or {}),
                "id": link_id,
                "tenantId": tenant_id,
                "connectionId": target.id,
                "entityType": target.entity_type,
                "externalId": external_id,
                "shardId": shard_id,
                "deleted": operation is Operation.DELETE,
            }
            doc = _without(doc, "deletedHash")
            if operation is Operation.DELETE:
                doc.update(self._tombstone(self._stamp()))
                if state.get("deletedHash") is not None:
                    doc["deletedHash"] = state["deletedHash"]
            else:
                doc = {key: value for key, value in doc.items() if key not in ("deletedAt", "ttl")}
                doc["pushedFingerprint"] = state.get("pushedFingerprint")
            try:
                if found is None:
                    await self._store.create(LINKS, doc)
                else:
                    await self._store.replace(LINKS, doc, if_match=found.get("_etag"))
                return
            except (AlreadyExists, PreconditionFailed):
                continue
        raise RetryableError(f"the link of {external_id} on connection {target.id} kept changing")

    async def _forget_pending(self, tenant_id: str, target: Target, plan: PushPlan) -> None:
        if plan.adoption_key is not None:
            await self._delete_pending(pending_id(target.id, plan.entity_type, plan.adoption_key), tenant_id)

    async def _delete_pending(self, doc_id: str, tenant_id: str) -> None:
        with suppress(NotFound):  # adopted meanwhile, or never written
            await self._store.delete(LINKS, doc_id, tenant_id)

    def _stamp(self) -> str:
        return format_utc(now_utc(self._clock))

    def _tombstone(self, stamp: str) -> dict[str, Any]:
        marks: dict[str, Any] = {"deleted": True, "deletedAt": stamp}
        if self._ttl is not None:
            marks["ttl"] = self._ttl
        return marks


def _held_nowhere(doc: Mapping[str, Any]) -> bool:
    """No connection that knows the record still has it: the shard becomes a tombstone."""
    states = doc.get("sync") or {}
    return all((states.get(connection) or {}).get("deleted") for connection in doc.get("externalIds") or {})


def _without(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in doc.items() if name != key}


def _without_store_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key not in ("_etag", "_ts")}
