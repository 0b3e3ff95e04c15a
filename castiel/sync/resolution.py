"""A person decides a conflict: ``castiel conflicts resolve ID --take local|remote``.

A field conflict records both values and the side its rule kept. Taking a side writes that side's value into the
shard — when it is not there already — as the field's newest version (source ``local`` for the shard's own value,
the connection for the remote one), and marks the conflict resolved with the side taken. The shard is written under
the etag read, and only if the field still holds the value the conflict left in it: a field changed since is newer
than the decision being made, and is refused rather than overwritten.

A duplicate candidate (fuzzy dedup) is never merged: taking ``local`` marks it reviewed, the two shards kept apart.

Only an open conflict is decided. One already resolved — by its rule when it was detected, or by a person — is
refused with when and how, changing nothing: deciding it again would flip the shard back and forth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import ConfigError, NotFound, PreconditionFailed
from castiel.models import Conflict, ConflictStatus, Shard, format_utc
from castiel.ports import DocumentStore
from castiel.sync.canonical import fingerprint, same
from castiel.sync.conflicts import LOCAL
from castiel.sync.dedup import match_blocks, match_keys

Take = Literal["local", "remote"]


@dataclass(frozen=True, slots=True)
class Resolved:
    """The conflict as resolved, and the shard fields the decision changed (empty when the shard already held the
    value taken)."""

    conflict: dict[str, Any]
    changed: dict[str, Any]


async def resolve(
    store: DocumentStore, conflict: dict[str, Any], take: Take, *, clock: Clock = system_clock
) -> Resolved:
    """Resolve ``conflict`` (a stored ``conflicts`` document) by taking one side."""
    if conflict.get("status") != ConflictStatus.OPEN.value:
        raise PreconditionFailed(f"conflict {conflict.get('id')} is not open: {_how_resolved(conflict)}")
    now = format_utc(now_utc(clock))
    changed: dict[str, Any] = {}
    if conflict.get("kind", "field") == "duplicate":
        if take != "local":
            raise ConfigError(
                "duplicate shards are never merged: --take local marks the candidate reviewed, the shards kept apart"
            )
    else:
        changed = await _take_side(store, Conflict.model_validate(conflict), take, now)
    update = {"status": ConflictStatus.RESOLVED.value, "resolvedAt": now}
    if "kind" not in conflict or conflict["kind"] == "field":
        update["kept"] = take
    doc = {key: value for key, value in conflict.items() if not key.startswith("_")} | update
    stored = await store.replace(Conflict.container, doc, if_match=conflict.get("_etag"))
    return Resolved(stored, changed)


def _how_resolved(conflict: dict[str, Any]) -> str:
    """When and how a conflict that is no longer open was decided, in words."""
    when = conflict.get("resolvedAt") or "an unknown time"
    if conflict.get("kind") == "duplicate":
        return f"reviewed at {when}, the shards kept apart"
    # A rule decides as the conflict is detected; a person's decision comes later.
    by = f"by its rule {conflict.get('rule')}" if when == conflict.get("detectedAt") else "by hand"
    return f"resolved {by} at {when}, keeping the {conflict.get('kept')} value"


async def _take_side(store: DocumentStore, conflict: Conflict, take: Take, now: str) -> dict[str, Any]:
    try:
        shard = await store.read(Shard.container, conflict.shard_id, conflict.tenant_id)
    except NotFound:
        raise NotFound(f"shard {conflict.shard_id} of conflict {conflict.id} no longer exists") from None
    data = dict(shard.get("data") or {})
    wanted = conflict.local_value if take == "local" else conflict.remote_value
    current = data.get(conflict.field)
    if same(current, wanted):
        return {}
    left = conflict.local_value if conflict.kept == "local" else conflict.remote_value
    if not same(current, left):
        raise PreconditionFailed(
            f"shard {conflict.shard_id} field {conflict.field!r} changed since conflict {conflict.id} was recorded "
            f"(it holds {current!r} now): a newer value is not overwritten"
        )
    data[conflict.field] = wanted
    doc = {key: value for key, value in shard.items() if not key.startswith("_")}
    doc["data"] = data
    doc["fieldVersions"] = {**(shard.get("fieldVersions") or {}), conflict.field: now}
    source = LOCAL if take == "local" else conflict.connection_id
    doc["fieldSources"] = {**(shard.get("fieldSources") or {}), conflict.field: source}
    doc["contentHash"] = fingerprint(data)
    # The natural keys are recomputed from the new data, key by key as stored (``name__company``).
    keys = match_keys(data, [name.split("__") for name in shard.get("matchKeys") or {}])
    doc["matchKeys"], doc["matchBlocks"] = keys, match_blocks(keys)
    doc["updatedAt"] = now
    try:
        await store.replace(Shard.container, doc, if_match=shard.get("_etag"))
    except PreconditionFailed:
        raise PreconditionFailed(f"shard {conflict.shard_id} changed meanwhile: run the command again") from None
    return {conflict.field: wanted}
