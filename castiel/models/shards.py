"""The hub's records: shards with what each connection last had of them, the external-id links that find them, and
what conflicts and fuzzy dedup leave for a person (``shards``, ``external-ids``, ``conflicts``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from castiel.clock import now_utc
from castiel.models.base import TenantDocument, UtcDateTime, WireModel, stable_id
from castiel.models.enums import ConflictStatus, ConflictStrategy


class ConnectionSyncState(WireModel):
    """What one connection last had of a shard: the two-way bookkeeping (echo suppression, three-way merges).

    Fingerprints are ``castiel.sync.canonical.fingerprint`` of the connection's mapped fields; ``snapshot`` is those
    fields as last agreed with the connection (pulled from it or pushed to it), the base of a three-way merge.
    """

    entity_type: str
    pulled_fingerprint: str | None = None
    pulled_at: UtcDateTime | None = None
    pushed_fingerprint: str | None = None
    pushed_at: UtcDateTime | None = None
    snapshot: dict[str, Any] = Field(default_factory=dict)
    deleted: bool = False
    deleted_at: UtcDateTime | None = None
    pending_create_at: UtcDateTime | None = None
    """Set while a create of this shard on the connection is under way or its outcome unknown (no external id yet):
    no second create is sent before the outcome is known or ``SYNC_CREATE_CONFIRM_SECONDS`` have passed."""


class Shard(TenantDocument):
    """One record of a shard type.

    ``field_versions`` and ``field_sources`` say when and by whom (a connection id, or ``local``) each field was last
    set; ``sync`` holds each connection's state by connection id. Dedup queries ``match_keys`` (normalised natural
    keys, composite), ``match_blocks`` (fuzzy) and ``content_hash`` (the fingerprint of ``data``). A deleted shard
    stays as a tombstone (``deleted``, ``deleted_at``).
    """

    container: ClassVar[str] = "shards"

    shard_type: str
    data: dict[str, Any] = Field(default_factory=dict)
    field_versions: dict[str, UtcDateTime] = Field(default_factory=dict)
    field_sources: dict[str, str] = Field(default_factory=dict)
    external_ids: dict[str, str] = Field(default_factory=dict)
    sync: dict[str, ConnectionSyncState] = Field(default_factory=dict)
    match_keys: dict[str, str] = Field(default_factory=dict)
    match_blocks: dict[str, str] = Field(default_factory=dict)
    content_hash: str | None = None
    relationships: list[dict[str, str]] = Field(default_factory=list)
    derived_from: str | None = None
    updated_at: UtcDateTime = Field(default_factory=now_utc)
    deleted: bool = False
    deleted_at: UtcDateTime | None = None


class ExternalIdLink(TenantDocument):
    """``(connectionId, entityType, externalId)`` → shard id.

    ``fingerprint`` and ``pushed_fingerprint`` copy the shard's sync state for this connection, written after the
    shard, so a page can tell unchanged records and echoes of our own pushes without reading their shards.
    """

    container: ClassVar[str] = "external-ids"

    connection_id: str
    entity_type: str
    external_id: str
    shard_id: str
    fingerprint: str | None = None
    pushed_fingerprint: str | None = None
    deleted: bool = False
    deleted_at: UtcDateTime | None = None

    @staticmethod
    def make_id(connection_id: str, entity_type: str, external_id: str) -> str:
        return stable_id("xid", connection_id, entity_type, external_id)


class Conflict(TenantDocument):
    """A field both sides changed, with both values and the rule that decided it; ``open`` until a person decides
    (``manual``), else recorded ``resolved`` by its rule."""

    container: ClassVar[str] = "conflicts"

    kind: Literal["field"] = "field"
    status: ConflictStatus
    shard_id: str
    shard_type: str
    connection_id: str
    field: str
    local_value: Any = None
    remote_value: Any = None
    rule: ConflictStrategy
    kept: Literal["local", "remote"]
    detected_at: UtcDateTime
    resolved_at: UtcDateTime | None = None


class DuplicateCandidate(TenantDocument):
    """Two shards that fuzzy dedup found alike, for a person to review; nothing is merged."""

    container: ClassVar[str] = "conflicts"

    kind: Literal["duplicate"] = "duplicate"
    status: ConflictStatus = ConflictStatus.OPEN
    shard_id: str
    candidate_shard_id: str
    shard_type: str
    connection_id: str
    key: str
    value: str
    candidate_value: str
    score: float
    detected_at: UtcDateTime
    resolved_at: UtcDateTime | None = None
