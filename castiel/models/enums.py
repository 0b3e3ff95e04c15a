"""The values the models of several areas share: providers, sync modes and priorities, operations and the origin
of a change, task statuses, and the dedup, conflict and delete strategies a connection chooses."""

from __future__ import annotations

from enum import StrEnum


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
