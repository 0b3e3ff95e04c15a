"""The record an adapter hands the sync engine, as the sync unit tests build it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

T0 = datetime(2026, 3, 1, tzinfo=UTC)
"""When a test's records were last updated, unless it says otherwise."""


@dataclass(frozen=True)
class Rec:
    """A record as an adapter hands it over (``adapters.records.Record``, with defaults)."""

    entity_type: str
    external_id: str
    data: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = T0
    deleted: bool = False
