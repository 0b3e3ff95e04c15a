"""A tenant's connections, their scheduled sync tasks, and the result of each execution (``connections``,
``sync-tasks``, ``sync-results``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field

from castiel.models.base import TenantDocument, UtcDateTime, WireModel
from castiel.models.enums import (
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
