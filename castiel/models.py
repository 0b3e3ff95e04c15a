"""Pydantic models on the wire (queue bodies) and in storage (documents), DESIGN §4.

Field names are camelCase on the wire and in documents, snake_case in Python. Documents carry the store's
``_etag`` and ``_ts`` when read back; writes never send them as data.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, computed_field
from pydantic.alias_generators import to_camel


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def format_utc(value: datetime) -> str:
    """The one stored form of a time: fixed-width ISO-8601 UTC (``2026-11-23T02:36:00.000000Z``).

    Fixed width makes the strings order exactly as the times do, so stores compare them as text.
    Use it for query filter values on time fields too.
    """
    if value.tzinfo is None:
        raise ValueError("naive datetime: Castiel times are timezone-aware UTC")
    # isoformat pads the year to four digits (strftime's %Y does not on every platform) and is the faster of the two.
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


UtcDateTime = Annotated[
    datetime, AfterValidator(_as_utc), PlainSerializer(format_utc, return_type=str, when_used="json")
]
"""A timezone-aware UTC datetime stored and sent as ``format_utc`` text."""


class WireModel(BaseModel):
    """camelCase JSON in and out; unknown fields ignored so older workers read newer messages."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json_bytes(self) -> bytes:
        """The wire form: camelCase JSON, no nulls."""
        return self.__pydantic_serializer__.to_json(self, by_alias=True, exclude_none=True)

    @classmethod
    def from_json_bytes(cls, body: bytes | str) -> Self:
        """Parse and validate the wire form (raises ``pydantic.ValidationError``)."""
        return cls.model_validate_json(body)


def stable_id(*parts: object) -> str:
    """A deterministic id from its parts: the same inputs always give the same id (duplicate detection)."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
    return digest[:32]


# ---------------------------------------------------------------- enums


class Provider(StrEnum):
    SALESFORCE = "salesforce"
    GITHUB = "github"
    GOOGLE = "google"
    NOTION = "notion"
    SLACK = "slack"
    STANDARD = "standard"


class SyncMode(StrEnum):
    PULL = "pull"
    PUSH = "push"
    BIDIRECTIONAL = "bidirectional"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for high; lower ranks are scheduled first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


class TriggerKind(StrEnum):
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    MANUAL = "manual"


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class ChangeOrigin(StrEnum):
    """What brought a change: a provider's webhook (not merged yet), a local edit or a pull (both already in the
    shard: the outbound worker only pushes them)."""

    WEBHOOK = "webhook"
    LOCAL = "local"
    PULL = "pull"


class TaskStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"
    PAUSED = "paused"
    NEEDS_REAUTH = "needs_reauth"


class DedupStrategy(StrEnum):
    EXTERNAL_ID = "external_id"
    CONTENT_HASH = "content_hash"
    COMPOSITE_KEY = "composite_key"
    FUZZY = "fuzzy"


class ConflictStrategy(StrEnum):
    LOCAL_WINS = "local_wins"
    REMOTE_WINS = "remote_wins"
    NEWEST_WINS = "newest_wins"
    FIELD_MERGE = "field_merge"
    SOURCE_PRIORITY = "source_priority"
    MANUAL = "manual"


class DeletePolicy(StrEnum):
    """Whether a delete seen on one connection goes out to the others (a wrong delete is the costliest sync bug)."""

    TOMBSTONE_ONLY = "tombstone_only"
    PROPAGATE = "propagate"


class ConflictStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


# ---------------------------------------------------------------- queue messages


class SyncTaskMessage(WireModel):
    """One unit of inbound work on ``sync-inbound``."""

    integration_id: str
    tenant_id: str
    connection_id: str
    sync_mode: SyncMode
    priority: Priority = Priority.NORMAL
    correlation_id: str
    enqueued_at: UtcDateTime
    task_id: str | None = None
    trigger: TriggerKind = TriggerKind.SCHEDULE

    def message_id(self, run_at: datetime) -> str:
        """Deterministic per run slot: the same task scheduled for the same ``run_at`` is the same message."""
        return stable_id("sync-task", self.tenant_id, self.task_id or self.connection_id, format_utc(run_at))


class OutboundChange(WireModel):
    """One change to push out, from a webhook or a local edit, on ``sync-outbound``."""

    integration_id: str
    tenant_id: str
    connection_id: str | None = None
    entity_type: str
    entity_id: str
    external_id: str | None = None
    operation: Operation
    changes: dict[str, Any] = Field(default_factory=dict)
    timestamp: UtcDateTime
    origin: ChangeOrigin
    event_type: str | None = None
    correlation_id: str

    def message_id(self, delivery_id: str | None = None) -> str:
        """Deterministic: a re-sent delivery of the same change is the same message."""
        return stable_id(
            "outbound",
            self.tenant_id,
            self.connection_id,
            delivery_id or format_utc(self.timestamp),
            self.entity_type,
            self.external_id or self.entity_id,
            self.operation,
        )


class RateLimitCheck(WireModel):
    """The decision of one rate-limit check across all levels."""

    allowed: bool
    queued: bool
    remaining: int
    reset_at: UtcDateTime
    retry_after_seconds: float
    level: str | None = None


# ---------------------------------------------------------------- documents


class Document(WireModel):
    """A stored document. ``container`` names its Cosmos container; ``etag`` is the store's version."""

    container: ClassVar[str]

    id: str
    etag: str | None = Field(default=None, alias="_etag")

    def to_doc(self) -> dict[str, Any]:
        """The JSON document to store (without the store's own ``_etag``)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"etag"})


class TenantDocument(Document):
    """A document partitioned by ``/tenantId``."""

    tenant_id: str


def _plain_rule(strategy: ConflictStrategy) -> ConflictStrategy:
    if strategy is ConflictStrategy.FIELD_MERGE:
        raise ValueError("the field_merge fallback must be another strategy than field_merge")
    return strategy


class Connection(TenantDocument):
    """A tenant's link to one provider account."""

    container: ClassVar[str] = "connections"

    integration_id: str
    provider: Provider
    base_url: str | None = None
    entity_types: list[str] = Field(default_factory=list)
    credential_id: str | None = None
    sync_direction: SyncMode = SyncMode.BIDIRECTIONAL
    conflict_strategy: ConflictStrategy = ConflictStrategy.LOCAL_WINS
    dedup_strategy: DedupStrategy = DedupStrategy.EXTERNAL_ID
    status: str = "active"
    settings: dict[str, Any] = Field(default_factory=dict)
    entity_mappings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Provider entity type → mapping (``castiel.sync.mapping``), checked against the adapter when it is set."""
    delete_policy: DeletePolicy = DeletePolicy.TOMBSTONE_ONLY
    source_priority: list[str] = Field(default_factory=list)
    """``source_priority``: connection ids (and ``local`` for local edits), the first owning every field it sends."""
    field_merge_fallback: Annotated[ConflictStrategy, AfterValidator(_plain_rule)] = ConflictStrategy.LOCAL_WINS
    """``field_merge``: the rule for a field both sides changed since the last sync (any strategy but itself)."""
    fuzzy_threshold: float = Field(default=90.0, ge=0, le=100)
    """``fuzzy``: the similarity (0 to 100) from which a record is reported as a duplicate candidate."""


class SyncTask(TenantDocument):
    """A scheduled sync of one connection."""

    container: ClassVar[str] = "sync-tasks"

    integration_id: str
    connection_id: str
    sync_mode: SyncMode = SyncMode.PULL
    priority: Priority = Priority.NORMAL
    priority_rank: int = 1
    status: TaskStatus = TaskStatus.PENDING
    next_run_at: UtcDateTime
    interval_minutes: int = Field(default=60, ge=1)
    cursors: dict[str, str] = Field(default_factory=dict)
    status_changed_at: UtcDateTime | None = None
    paused_until: UtcDateTime | None = None
    last_error: str | None = None
    last_result_id: str | None = None

    def model_post_init(self, context: Any, /) -> None:
        # Stored beside the priority so the store can order high → normal → low without a CASE expression.
        self.priority_rank = self.priority.rank


class PhaseTiming(WireModel):
    name: str
    started_at: UtcDateTime
    duration_ms: float


class SyncCounts(WireModel):
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    failed: int = 0


class RecordFailure(WireModel):
    """A record a sync could not take (it failed mapping): which one, and why."""

    entity_type: str
    external_id: str
    reason: str


class TargetOutcome(WireModel):
    """What one outbound change did to one target connection: ``pushed`` (with the operation and the external id
    there), ``skipped`` (with why: in sync already, a delete policy …), ``failed`` or ``waiting`` (retried later)."""

    connection_id: str
    status: Literal["pushed", "skipped", "failed", "waiting"]
    operation: Operation | None = None
    external_id: str | None = None
    reason: str | None = None


class SyncResult(TenantDocument):
    """One execution of a sync task: ``phase`` is where it is now (``complete`` once done), ``phases`` the time
    spent in each so far, ``failures`` the first records it could not take (``counts.failed`` counts them all).

    An outbound change's result has ``shard_id`` and one ``targets`` entry per connection it went to.
    """

    container: ClassVar[str] = "sync-results"

    task_id: str | None = None
    connection_id: str
    status: str
    started_at: UtcDateTime
    finished_at: UtcDateTime | None = None
    phase: str | None = None
    phases: list[PhaseTiming] = Field(default_factory=list)
    pages: int = 0
    counts: SyncCounts = Field(default_factory=SyncCounts)
    failures: list[RecordFailure] = Field(default_factory=list)
    error: str | None = None
    correlation_id: str
    trigger: TriggerKind | None = None
    shard_id: str | None = None
    targets: list[TargetOutcome] = Field(default_factory=list)


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
    updated_at: UtcDateTime = Field(default_factory=utcnow)
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


class WebhookHealth(WireModel):
    """A registration's delivery health, derived from its audit records (``castiel.webhooks.health``): deliveries
    per group of outcomes (``health.OUTCOME_GROUPS``), the last one's time, outcome and reason, and a status."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    last_received_at: UtcDateTime | None = None
    last_outcome: str | None = None
    last_reason: str | None = None
    status: str = "healthy"


class VerificationState(StrEnum):
    """Whether a Notion registration takes new verification tokens (``castiel.webhooks.notion_verification``)."""

    OPEN = "open"
    CONFIRMED = "confirmed"


class WebhookRegistration(TenantDocument):
    """A webhook endpoint registered for one connection.

    ``credential_id`` names the ``webhook_secret`` credential its deliveries are signed with
    (``castiel.credentials.webhook_secrets``); None for a scheme without a secret and for a Notion registration whose
    token is not yet confirmed. Registrations stored before signing secrets were credentials have only
    ``secret_name`` (in the oldest stores shared by a connection's registrations) and verify with it until their
    secret is next rotated, which gives them a credential of their own.

    ``verification`` is a Notion registration's: ``open`` while it takes verification tokens, ``confirmed`` once an
    operator promoted one; None for other providers, and for Notion registrations stored before it existed (they
    take no token until re-opened).
    """

    container: ClassVar[str] = "webhooks"

    provider: Provider
    connection_id: str
    integration_id: str
    credential_id: str | None = None
    secret_name: str | None = None
    events: list[str] = Field(default_factory=list)
    status: str = "active"
    settings: dict[str, Any] = Field(default_factory=dict)
    verification: VerificationState | None = None


class DeliveryOutcome(StrEnum):
    """How the receiver handled a delivery: ``WebhookAudit.outcome`` (stored as text, so a newer outcome never
    breaks an older reader)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    HANDSHAKE = "handshake"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    VERIFICATION_REFUSED = "verification_refused"
    UNKNOWN_REGISTRATION = "unknown_registration"
    MISCONFIGURED = "misconfigured"
    VERIFY_UNAVAILABLE = "verify_unavailable"
    ENQUEUE_FAILED = "enqueue_failed"
    UNAVAILABLE = "unavailable"


class WebhookAudit(Document):
    """One webhook delivery; partitioned by ``/registrationId``, kept 30 days."""

    container: ClassVar[str] = "webhook-audit"

    registration_id: str
    tenant_id: str | None = None
    delivery_id: str | None = None
    outcome: str
    status_code: int
    reason: str | None = None
    latency_ms: float
    received_at: UtcDateTime
    ttl: int = 30 * 24 * 3600


class CredentialStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"


class RotationPolicy(WireModel):
    """When a credential's value must be replaced, and how early to warn (DESIGN §8)."""

    interval_days: int | None = Field(default=None, ge=1)
    """Replace the value this many days after it was set (None: no fixed rotation)."""
    warn_before_days: int = Field(default=14, ge=0)
    """Warn this many days before an expiry or rotation deadline that a refresh cannot meet."""
    refresh_idle_days: int | None = Field(default=None, ge=1)
    """The provider drops a refresh token unused this long (a Slack or Salesforce policy): refresh before then."""


class CredentialMetadata(TenantDocument):
    """Credential metadata only; the value lives in the secret store under ``secret_name`` at ``secret_version``.

    ``version`` rises with every new value; ``fence`` is the lock token of the refresh that wrote it (a refresh
    holding an older token may not overwrite it). ``due_at`` is derived: when the token refresher must next act —
    refresh it, or warn that a deadline is near.
    """

    container: ClassVar[str] = "credentials"

    connection_id: str
    provider: Provider
    credential_type: str
    secret_name: str
    secret_version: str | None = None
    previous_secret_version: str | None = None
    """The version ``secret_version`` replaced: a rotated webhook secret keeps verifying for the rotation grace."""
    version: int = Field(default=1, ge=1)
    fence: int = Field(default=0, ge=0)
    status: CredentialStatus = CredentialStatus.ACTIVE
    status_reason: str | None = None
    scopes: list[str] = Field(default_factory=list)
    refreshable: bool = False
    expires_at: UtcDateTime | None = None
    refresh_token_expires_at: UtcDateTime | None = None
    instance_url: str | None = None
    rotation: RotationPolicy = Field(default_factory=RotationPolicy)
    rotated_at: UtcDateTime | None = None
    last_refreshed_at: UtcDateTime | None = None
    warned_for: UtcDateTime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def due_at(self) -> UtcDateTime | None:
        """When the refresher must next act; stored so that its selection is one range query (``dueAt <= cutoff``)."""
        return min((at for at in (self.refresh_at(), self.warn_at()) if at is not None), default=None)

    def refresh_at(self) -> datetime | None:
        """When the token must be refreshed: its expiry, or the idle limit of its refresh token if sooner."""
        if not self.refreshable:
            return None
        idle_limit = None
        last_used = self.last_refreshed_at or self.rotated_at
        if self.rotation.refresh_idle_days is not None and last_used is not None:
            idle_limit = last_used + timedelta(days=self.rotation.refresh_idle_days)
        candidates = (self.expires_at, self.refresh_token_expires_at, idle_limit)
        return min((at for at in candidates if at is not None), default=None)

    def deadline(self) -> datetime | None:
        """The date a person must replace the value by: a non-refreshable expiry or the rotation interval."""
        rotation_due = None
        if self.rotation.interval_days is not None and self.rotated_at is not None:
            rotation_due = self.rotated_at + timedelta(days=self.rotation.interval_days)
        expiry = None if self.refreshable else self.expires_at
        return min((at for at in (expiry, rotation_due) if at is not None), default=None)

    def warn_at(self) -> datetime | None:
        """When to warn about ``deadline``; None once warned about this deadline."""
        deadline = self.deadline()
        if deadline is None or deadline == self.warned_for:
            return None
        return deadline - timedelta(days=self.rotation.warn_before_days)


class RefreshOutcome(StrEnum):
    REFRESHED = "refreshed"
    ALREADY_FRESH = "already_fresh"
    """Another holder of the lock refreshed it first; its token is used."""
    NEEDS_REAUTH = "needs_reauth"
    FAILED = "failed"
    WARNED = "warned"


class TokenRefreshAudit(TenantDocument):
    """One token refresh attempt (or expiry warning) and its outcome; never a secret value."""

    container: ClassVar[str] = "token-refresh-audit"

    credential_id: str
    connection_id: str
    outcome: RefreshOutcome
    trigger: str
    error: str | None = None
    attempted_at: UtcDateTime
    version: int | None = None
    new_expires_at: UtcDateTime | None = None


CONTAINER_PARTITION_KEYS: dict[str, str] = {
    "connections": "tenantId",
    "sync-tasks": "tenantId",
    "sync-results": "tenantId",
    "shards": "tenantId",
    "external-ids": "tenantId",
    "conflicts": "tenantId",
    "webhooks": "tenantId",
    "webhook-audit": "registrationId",
    "credentials": "tenantId",
    "token-refresh-audit": "tenantId",
}
"""Every container of DESIGN §4 and the top-level field its partition key path names."""
