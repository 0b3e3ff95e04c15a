"""Echo suppression, pure: what a target connection still lacks of a shard, and what it has once a push landed.

The hub keeps, per connection, the state last agreed with it (``sync[<connection>]``: the snapshot of its mapped
fields, pulled from it or pushed to it, and the push fingerprint). A push is planned against that state, never
against the change that triggered it, so:

- a connection that already has the shard's values gets nothing (a redelivered or reordered message, a retry after
  some targets succeeded, our own write reported back by a webhook and merged again: all find nothing to send);
- an update sends only the fields whose value differs from the connection's snapshot, so a field changed there
  meanwhile is not overwritten with an older value;
- after a push, the snapshot and push fingerprint are those of the object the provider answered with (when it answers
  with one), which is exactly what its next pull or webhook reports: dedup recognises it (``pushedFingerprint`` on the
  link) and drops it instead of merging it and sending it back;
- after a delete on a provider that keeps the record (GitHub closes an issue), the content hash of the record as it
  answered (``deletedHash`` on the link): its reports of the closed issue are this delete coming back, not the record
  living again; a change made there afterwards (a person re-opens it) differs, and is merged.

A create is recognised before its external id is known by its *adoption key* (the written fields without nulls,
which a provider fills in on create), so the webhook of our own create, arriving before the create's answer was
saved, is linked to the shard instead of making a second one (``push.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from castiel.models import Operation, stable_id
from castiel.sync.canonical import fingerprint, same
from castiel.sync.mapping import EntityMapping
from castiel.sync.targets import Target

_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class PushPlan:
    """One write to a target: the operation, the target's entity type and external id (None for a create), the shard
    fields it writes and the provider payload they become (the address included), and a create's adoption key."""

    operation: Operation
    entity_type: str
    external_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    adoption_key: str | None = None
    address: dict[str, Any] = field(default_factory=dict)
    """What the provider needs besides the external id to find the record (``BaseAdapter.address_fields``)."""


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing to write to a target, and why."""

    reason: str


def plan_push(shard: Mapping[str, Any], target: Target, *, gone: bool, propagate_deletes: bool) -> PushPlan | Skip:
    """What ``target`` still lacks of ``shard``. ``gone``: the record was deleted at its source (or the shard is a
    tombstone); the delete goes out only when the source's policy is ``propagate``.

    ``ValueError`` naming the field when a shard value cannot be written through the target's mapping.
    """
    state: Mapping[str, Any] = (shard.get("sync") or {}).get(target.id) or {}
    external_id = (shard.get("externalIds") or {}).get(target.id)
    if state.get("deleted"):
        return Skip("deleted on this connection: not recreated")
    snapshot: Mapping[str, Any] = state.get("snapshot") or {}
    if gone or shard.get("deleted"):
        if external_id is None:
            return Skip("deleted before it reached this connection")
        if not propagate_deletes:
            return Skip("deletePolicy tombstone_only: the delete stays local")
        where = address(target, snapshot)
        return PushPlan(Operation.DELETE, target.entity_type, external_id, data=where, address=where)
    mapping = target.mapping
    desired = writable_fields(mapping, shard.get("data") or {})
    if external_id is None:
        if not desired:
            return Skip("no field this connection maps")
        payload = mapping.reverse(desired)
        return PushPlan(Operation.CREATE, target.entity_type, None, desired, payload, adoption_key(mapping, desired))
    changed = {name: value for name, value in desired.items() if not _same(snapshot.get(name, _ABSENT), value)}
    if not changed:
        return Skip("in sync")
    where = address(target, snapshot)
    payload = {**mapping.reverse(changed), **where}
    return PushPlan(Operation.UPDATE, target.entity_type, external_id, changed, payload, address=where)


def writable_fields(mapping: EntityMapping, data: Mapping[str, Any]) -> dict[str, Any]:
    """The shard fields ``mapping`` writes, as the connection would report them back (its own coercions applied)."""
    return mapping.fields_of(mapping.reverse(data))


def address(target: Target, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The provider fields an update or delete needs besides the external id, from what the connection last
    reported (GitHub's issue ``number``); a field the mapping does not keep is left out (the adapter says so)."""
    wanted, rules = target.address_fields, target.mapping.rules
    if rules is None:
        return {name: snapshot[name] for name in wanted if name in snapshot}
    return {
        rule.path.text: snapshot[rule.shard_field]
        for rule in rules
        if rule.path.text in wanted and rule.shard_field in snapshot
    }


def adoption_key(mapping: EntityMapping, fields: Mapping[str, Any]) -> str:
    """What recognises a record we created, before its external id is known: its written fields without nulls."""
    return fingerprint({name: value for name, value in mapping.push_fields(fields).items() if value is not None})


def pending_id(connection_id: str, entity_type: str, key: str) -> str:
    """The id of the pending-create document of a create on ``connection_id`` with adoption key ``key``."""
    return stable_id("pending-create", connection_id, entity_type, key)


def pushed_state(
    previous: Mapping[str, Any],
    plan: PushPlan,
    mapping: EntityMapping,
    answered: Mapping[str, Any] | None,
    stamp: str,
) -> dict[str, Any]:
    """The target's sync state once ``plan`` landed: the object the provider ``answered`` with, mapped (else the
    previous snapshot with the written fields), its push fingerprint, no pending create. A delete is answered only
    by a provider that keeps the record (``Target.delete_keeps_record``): its content hash is kept, to know the
    record's later reports for this delete's echo."""
    dropped = ("pendingCreateAt", "deleted", "deletedAt", "deletedHash")
    state = {key: value for key, value in previous.items() if key not in dropped}
    state["entityType"] = plan.entity_type
    if plan.operation is Operation.DELETE:
        state.update(deleted=True, deletedAt=stamp)
        if answered is not None:
            with suppress(ValueError):  # unreadable through the mapping: its reports will read as changes
                state["deletedHash"] = fingerprint(mapping.fields_of(answered))
        return state
    snapshot = {**(previous.get("snapshot") or {}), **plan.fields}
    if answered is not None:
        # An answer the mapping cannot read tells nothing better than what was written.
        with suppress(ValueError):
            snapshot = mapping.fields_of(answered)
    state.update(snapshot=snapshot, pushedFingerprint=mapping.push_fingerprint(snapshot), pushedAt=stamp)
    state["deleted"] = False
    return state


def _same(left: Any, right: Any) -> bool:
    if left is _ABSENT:
        return False
    return same(left, right)
