"""Queue bodies (DESIGN §4): ``SyncTaskMessage`` on ``sync-inbound``, ``OutboundChange`` on ``sync-outbound``, and the
``RateLimitCheck`` the limiter answers with. Message ids are deterministic, so a re-send is a duplicate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from castiel.models.base import UtcDateTime, WireModel, format_utc, stable_id
from castiel.models.enums import ChangeOrigin, Operation, Priority, SyncMode, TriggerKind


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
