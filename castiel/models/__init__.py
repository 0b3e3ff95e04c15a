"""Pydantic models on the wire (queue bodies) and in storage (documents), DESIGN §4, one module per concern:

* ``base``: camelCase JSON, the stored form of a time, deterministic ids, documents and their containers;
* ``enums``: the values several areas share (providers, modes, operations, strategies, statuses);
* ``messages``: the queue bodies (``SyncTaskMessage``, ``OutboundChange``) and ``RateLimitCheck``;
* ``tasks``: connections, sync tasks and their results;
* ``shards``: shards, external-id links, conflicts and duplicate candidates;
* ``webhooks``: registrations and the audit of their deliveries;
* ``credentials``: credential metadata and the audit of token refreshes.

Every public name is importable from ``castiel.models``.
"""

from castiel.models.base import (
    CONTAINER_PARTITION_KEYS,
    Document,
    TenantDocument,
    UtcDateTime,
    WireModel,
    format_utc,
    stable_id,
)
from castiel.models.credentials import (
    CredentialMetadata,
    CredentialStatus,
    RefreshOutcome,
    RotationPolicy,
    TokenRefreshAudit,
)
from castiel.models.enums import (
    ChangeOrigin,
    ConflictStatus,
    ConflictStrategy,
    DedupStrategy,
    DeletePolicy,
    Operation,
    Priority,
    Provider,
    SyncMode,
    TaskStatus,
    TriggerKind,
)
from castiel.models.messages import OutboundChange, RateLimitCheck, SyncTaskMessage
from castiel.models.shards import Conflict, ConnectionSyncState, DuplicateCandidate, ExternalIdLink, Shard
from castiel.models.tasks import (
    Connection,
    PhaseTiming,
    RecordFailure,
    SyncCounts,
    SyncResult,
    SyncTask,
    TargetOutcome,
)
from castiel.models.webhooks import (
    DeliveryOutcome,
    VerificationState,
    WebhookAudit,
    WebhookHealth,
    WebhookRegistration,
)

__all__ = [
    "CONTAINER_PARTITION_KEYS",
    "ChangeOrigin",
    "Conflict",
    "ConflictStatus",
    "ConflictStrategy",
    "Connection",
    "ConnectionSyncState",
    "CredentialMetadata",
    "CredentialStatus",
    "DedupStrategy",
    "DeletePolicy",
    "DeliveryOutcome",
    "Document",
    "DuplicateCandidate",
    "ExternalIdLink",
    "Operation",
    "OutboundChange",
    "PhaseTiming",
    "Priority",
    "Provider",
    "RateLimitCheck",
    "RecordFailure",
    "RefreshOutcome",
    "RotationPolicy",
    "Shard",
    "SyncCounts",
    "SyncMode",
    "SyncResult",
    "SyncTask",
    "SyncTaskMessage",
    "TargetOutcome",
    "TaskStatus",
    "TenantDocument",
    "TokenRefreshAudit",
    "TriggerKind",
    "UtcDateTime",
    "VerificationState",
    "WebhookAudit",
    "WebhookHealth",
    "WebhookRegistration",
    "WireModel",
    "format_utc",
    "stable_id",
]
