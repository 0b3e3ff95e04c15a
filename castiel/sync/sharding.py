"""Sharding, pure: a page's dedup decisions become the documents to write — shards, conflicts, links — as batches.

For each record: a new shard (``create``), the stored one merged under the connection's conflict rule (``replace``
with its etag, so a concurrent writer makes the page retry instead of being overwritten), or a tombstone.
Every shard keeps each connection's external id and sync state (the snapshot and fingerprint last pulled), its
natural keys and content hash for dedup, and its relationships: a record's references and a derived record's
parent, resolved to shard ids through the page's links and decisions (a record not seen yet resolves to the id it
will be created with). A deletion tombstones the connection's link and sync state, and the shard once no other
connection still holds it; with a retention period the tombstones expire (``ttl``).

Write the batches in the order ``PageWrites`` lists them: shards, conflicts, then links. A link carries the
fingerprint that lets the next page skip its record unread, so it must never be ahead of its shard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from castiel.models import SyncCounts, format_utc
from castiel.ports import BatchOperation
from castiel.sync.canonical import fingerprint
from castiel.sync.conflicts import ConflictSettings, FieldConflict, LocalState, RemoteChange, conflict_documents, merge
from castiel.sync.dedup import (
    Decision,
    DedupContext,
    RecordAction,
    key_name,
    link_id,
    match_blocks,
    match_keys,
    shard_id,
)
from castiel.sync.mapping import MappedRecord


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What a record did to its shard: ``action`` (``UPDATE`` whose merge changed nothing counts as unchanged;
    ``IGNORE``, a deletion of a record no shard holds), the fields whose value changed (what the other connections
    are to be told), and the conflicts."""

    record: MappedRecord
    action: RecordAction
    shard_id: str
    changed: dict[str, Any] = field(default_factory=dict)
    conflicts: tuple[FieldConflict, ...] = ()


@dataclass(slots=True)
class PageWrites:
    """A page's writes, one batch per container, to be written in this order (all in the tenant's partition)."""

    shards: list[BatchOperation] = field(default_factory=list)
    conflicts: list[BatchOperation] = field(default_factory=list)
    links: list[BatchOperation] = field(default_factory=list)
    outcomes: list[RecordOutcome] = field(default_factory=list)
    counts: SyncCounts = field(default_factory=SyncCounts)


def build_page(
    decisions: Sequence[Decision],
    links: Mapping[str, Mapping[str, Any]],
    ctx: DedupContext,
    settings: ConflictSettings,
    now: datetime,
    *,
    retention: timedelta | None = None,
) -> PageWrites:
    """The writes of a decided page (``dedup.decide``), given the links it read, at time ``now``."""
    page = _Page(decisions, links, ctx, settings, format_utc(now), now, retention)
    for decision in decisions:
        page.apply(decision)
    return page.writes


class _Page:
    def __init__(
        self,
        decisions: Sequence[Decision],
        links: Mapping[str, Mapping[str, Any]],
        ctx: DedupContext,
        settings: ConflictSettings,
        stamp: str,
        now: datetime,
        retention: timedelta | None,
    ) -> None:
        self.ctx, self.settings, self.stamp, self.now = ctx, settings, stamp, now
        self.ttl = None if retention is None else max(1, int(retention.total_seconds()))
        self.writes = PageWrites()
        # Where each (entity type, external id) lands: this page's decisions, else the links read for it.
        self.targets = {(doc["entityType"], doc["externalId"]): doc["shardId"] for doc in links.values()}
        self.targets.update({(d.record.entity_type, d.record.external_id): d.shard_id for d in decisions})

    def apply(self, decision: Decision) -> None:
        if decision.action is RecordAction.CREATE:
            outcome = self._create(decision)
        elif decision.action is RecordAction.UPDATE and decision.shard is not None:
            outcome = self._update(decision, decision.shard)
        elif decision.action is RecordAction.DELETE and decision.shard is not None:
            outcome = self._delete(decision, decision.shard)
        else:
            # Counted unchanged either way; a deletion no shard holds is told apart, as there is nothing to tell.
            ignored = decision.action is RecordAction.IGNORE and decision.shard is None
            outcome = RecordOutcome(
                decision.record, RecordAction.IGNORE if ignored else RecordAction.UNCHANGED, decision.shard_id
            )
        self.writes.outcomes.append(outcome)
        counts = self.writes.counts
        if outcome.action is RecordAction.CREATE:
            counts.created += 1
        elif outcome.action is RecordAction.UPDATE:
            counts.updated += 1
        elif outcome.action is RecordAction.DELETE:
            counts.deleted += 1
        else:
            counts.unchanged += 1
        counts.conflicts += len(outcome.conflicts)
        if decision.matched_by in ("content_hash", "composite_key"):
            counts.duplicates += 1

    def _create(self, decision: Decision) -> RecordOutcome:
        item, connection = decision.record, self.ctx.connection_id
        time = self._time(item)
        doc: dict[str, Any] = {
            "id": decision.shard_id,
            "tenantId": self.ctx.tenant_id,
            "shardType": item.shard_type,
            "data": dict(item.fields),
            "fieldVersions": dict.fromkeys(item.fields, time),
            "fieldSources": dict.fromkeys(item.fields, connection),
            "externalIds": {connection: item.external_id},
            "sync": {connection: self._pulled(item, None)},
            "relationships": self._relationships(item, []),
            "updatedAt": self.stamp,
            "deleted": False,
        }
        self._index(doc, item)
        self.writes.shards.append(BatchOperation.create(doc))
        self._link(decision, decision.shard_id)
        return RecordOutcome(item, RecordAction.CREATE, decision.shard_id, dict(item.fields))

    def _update(self, decision: Decision, stored: Mapping[str, Any]) -> RecordOutcome:
        item, connection = decision.record, self.ctx.connection_id
        state = (stored.get("sync") or {}).get(connection)
        base = None if state is None or state.get("deleted") else state.get("snapshot")
        local = LocalState(
            stored.get("data") or {}, stored.get("fieldVersions") or {}, stored.get("fieldSources") or {}
        )
        owned = self.ctx.mapping.entity(item.entity_type).read_only
        change = RemoteChange(connection, item.fields, self._time(item), base, owned=owned)
        result = merge(local, change, self.settings)
        doc = _without_store_fields(stored)
        doc["data"] = result.data
        doc["fieldVersions"] = {**local.versions, **result.versions}
        doc["fieldSources"] = {**local.sources, **result.sources}
        doc["externalIds"] = {**(stored.get("externalIds") or {}), connection: item.external_id}
        doc["sync"] = {**(stored.get("sync") or {}), connection: self._pulled(item, state)}
        doc["relationships"] = self._relationships(item, stored.get("relationships") or [])
        revived = bool(stored.get("deleted"))
        if revived:
            doc["deleted"] = False
            doc.pop("deletedAt", None)
            doc.pop("ttl", None)
        if result.changed or revived:
            doc["updatedAt"] = self.stamp
        self._index(doc, item)
        self.writes.shards.append(BatchOperation.replace(doc, if_match=stored.get("_etag")))
        self._record_conflicts(item, decision.shard_id, result.conflicts)
        self._link(decision, decision.shard_id)
        action = RecordAction.UPDATE if result.changed or revived else RecordAction.UNCHANGED
        return RecordOutcome(item, action, decision.shard_id, dict(result.changed), result.conflicts)

    def _delete(self, decision: Decision, stored: Mapping[str, Any]) -> RecordOutcome:
        item, connection = decision.record, self.ctx.connection_id
        doc = _without_store_fields(stored)
        states = dict(stored.get("sync") or {})
        gone = {"deleted": True, "deletedAt": self.stamp}
        states[connection] = {**states.get(connection, {"entityType": item.entity_type}), **gone}
        doc["sync"] = states
        held = (doc.get("externalIds") or {}).keys() - {connection}
        if not any(not states.get(other, {}).get("deleted") for other in held):
            doc.update(self._tombstone())
            doc["updatedAt"] = self.stamp
        self.writes.shards.append(BatchOperation.replace(doc, if_match=stored.get("_etag")))
        self._link(decision, decision.shard_id, deleted=True)
        return RecordOutcome(item, RecordAction.DELETE, decision.shard_id)

    # ---------------------------------------------------------------- parts

    def _pulled(self, item: MappedRecord, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        state = dict(previous) if previous else {}
        state.pop("deletedAt", None)
        state.pop("deletedHash", None)
        state.update(entityType=item.entity_type, pulledFingerprint=item.fingerprint, pulledAt=self.stamp)
        state["snapshot"] = dict(item.fields)
        state["deleted"] = False
        return state

    def _tombstone(self) -> dict[str, Any]:
        marks: dict[str, Any] = {"deleted": True, "deletedAt": self.stamp}
        if self.ttl is not None:
            marks["ttl"] = self.ttl
        return marks

    def _index(self, doc: dict[str, Any], item: MappedRecord) -> None:
        """What dedup and readers look shards up by: natural keys (this mapping's, recomputed from the merged
        data), their fuzzy blocks, the content hash, and the parent of a derived record."""
        keys = self.ctx.mapping.entity(item.entity_type).keys
        names = {key_name(key) for key in keys}
        found = match_keys(doc["data"], keys)
        others = {name: value for name, value in (doc.get("matchKeys") or {}).items() if name not in names}
        doc["matchKeys"] = {**others, **found}
        doc["matchBlocks"] = match_blocks(doc["matchKeys"])
        same_data = doc["data"] is item.fields or doc["data"] == item.fields
        doc["contentHash"] = item.content_hash if same_data else fingerprint(doc["data"])
        if item.parent is not None:
            doc["derivedFrom"] = self._target(item.parent.entity_type, item.parent.external_id)

    def _relationships(self, item: MappedRecord, current: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
        """This connection's relationships of the record replace its earlier ones; other connections' stay."""
        if not item.references and item.parent is None and not current:
            return []
        connection = self.ctx.connection_id
        mine = [(ref.type, ref.entity_type, ref.external_id) for ref in item.references]
        if item.parent is not None and item.relationship is not None:
            mine.append((item.relationship, item.parent.entity_type, item.parent.external_id))
        kept = [dict(entry) for entry in current if entry.get("connectionId") != connection]
        for kind, entity_type, external_id in sorted(set(mine)):
            kept.append(
                {
                    "type": kind,
                    "shardId": self._target(entity_type, external_id),
                    "connectionId": connection,
                    "entityType": entity_type,
                    "externalId": external_id,
                }
            )
        return kept

    def _target(self, entity_type: str, external_id: str) -> str:
        found = self.targets.get((entity_type, external_id))
        return found or shard_id(self.ctx.tenant_id, self.ctx.connection_id, entity_type, external_id)

    def _link(self, decision: Decision, target: str, *, deleted: bool = False) -> None:
        item = decision.record
        doc: dict[str, Any] = {
            **_without_store_fields(decision.link or {}),
            "id": link_id(self.ctx.connection_id, item.entity_type, item.external_id),
            "tenantId": self.ctx.tenant_id,
            "connectionId": self.ctx.connection_id,
            "entityType": item.entity_type,
            "externalId": item.external_id,
            "shardId": target,
            "deleted": deleted,
        }
        doc.pop("deletedHash", None)  # the connection's own report supersedes what our delete left there
        if deleted:
            doc.update(self._tombstone())
        else:
            doc["fingerprint"] = item.fingerprint
            for stale in ("deletedAt", "ttl"):
                doc.pop(stale, None)
        link = decision.link
        operation = (
            BatchOperation.create(doc) if link is None else BatchOperation.replace(doc, if_match=link.get("_etag"))
        )
        self.writes.links.append(operation)

    def _record_conflicts(self, item: MappedRecord, target: str, found: Sequence[FieldConflict]) -> None:
        if not found:
            return
        docs = conflict_documents(
            found,
            tenant_id=self.ctx.tenant_id,
            shard_id=target,
            shard_type=item.shard_type,
            connection_id=self.ctx.connection_id,
            detected_at=self.now,
        )
        self.writes.conflicts += [BatchOperation.upsert(doc) for doc in docs]

    def _time(self, item: MappedRecord) -> str:
        return self.stamp if item.updated_at is None else format_utc(item.updated_at)


def _without_store_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    copy = dict(doc)  # a C-level copy, then two pops: several times faster than filtering key by key
    copy.pop("_etag", None)
    copy.pop("_ts", None)
    return copy
