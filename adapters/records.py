"""What crosses the adapter seam: records and pages out of ``fetch``, changes into ``push`` and their results,
and the answers of ``discover`` and ``health_check``.

A record is ``{entityType, externalId, updatedAt, deleted, data}``: ``data`` is the provider's object as it returned
it, minus transport noise (Salesforce's ``attributes``). A page carries its records and the cursor to checkpoint once
they are saved; a redelivered sync resumes from it without repeating or skipping a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from castiel.errors import CastielError
from castiel.models import Operation, format_utc

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """One provider object as it left the provider."""

    entity_type: str
    external_id: str
    updated_at: datetime | None
    deleted: bool
    data: JsonObject

    def to_json(self) -> JsonObject:
        """The wire shape: ``{entityType, externalId, updatedAt, deleted, data}``."""
        return {
            "entityType": self.entity_type,
            "externalId": self.external_id,
            "updatedAt": None if self.updated_at is None else format_utc(self.updated_at),
            "deleted": self.deleted,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a fetch. ``cursor`` is what to checkpoint after ``records`` are saved (None: nothing to resume).

    ``resync`` is True on every page of a pass the provider forced to start again from nothing (an expired sync
    token, a deletion log that no longer reaches back to the cursor): records absent from such a pass may have been
    deleted without a tombstone.
    """

    records: list[Record]
    cursor: str | None
    resync: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """One change to push: ``data`` holds provider fields; ``external_id`` is required to update or delete."""

    entity_type: str
    operation: Operation
    external_id: str | None = None
    data: JsonObject = field(default_factory=dict)


class PushStatus(StrEnum):
    """What happened to one pushed change."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PushResult:
    """The outcome of one change, in the order the changes were given.

    A failure carries the taxonomy error it would have raised (``error``), so the caller decides retry or give-up
    per change from its type, as the queue workers do for whole messages. ``data`` is the object as the provider
    answered the write with it, where it does (what the record now looks like there, defaults filled in).
    """

    status: PushStatus
    external_id: str | None = None
    error: CastielError | None = None
    data: JsonObject | None = None

    @property
    def reason(self) -> str | None:
        """Why the change failed, None when it did not."""
        return None if self.error is None else str(self.error)


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of an entity type, as the provider's metadata names and types it."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """One entity type a connection can sync, with its default shard type and its fields."""

    name: str
    shard_type: str
    fields: tuple[FieldInfo, ...] = ()
    label: str | None = None

    def to_json(self) -> JsonObject:
        """``{name, shardType, label?, fields: [{name, type}]}``."""
        shown: JsonObject = {"name": self.name, "shardType": self.shard_type}
        if self.label is not None:
            shown["label"] = self.label
        shown["fields"] = [{"name": item.name, "type": item.type} for item in self.fields]
        return shown


@dataclass(frozen=True, slots=True)
class Discovery:
    """What a connection offers: its entity types and, where the provider lists them, every other one available."""

    entities: tuple[EntityInfo, ...]
    available: tuple[str, ...] = ()

    def to_json(self) -> JsonObject:
        """``{entities: [...], available: [...]}``."""
        return {"entities": [entity.to_json() for entity in self.entities], "available": list(self.available)}


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One named check of a connection and what it found."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Whether a connection works: authentication, then the objects it is configured for."""

    checks: tuple[HealthCheck, ...]
    discovery: Discovery | None = None

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(check.ok for check in self.checks)

    @property
    def error(self) -> str | None:
        """The first failed check's detail, None when healthy."""
        return next((check.detail for check in self.checks if not check.ok), None)

    def to_json(self) -> JsonObject:
        """``{ok, checks: [{name, ok, detail}], discovery?}``."""
        shown: JsonObject = {
            "ok": self.ok,
            "checks": [{"name": check.name, "ok": check.ok, "detail": check.detail} for check in self.checks],
        }
        if self.discovery is not None:
            shown["discovery"] = self.discovery.to_json()
        return shown
