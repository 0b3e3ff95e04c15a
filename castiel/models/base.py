"""What every model shares: camelCase JSON on the wire and in storage (``WireModel``), the one stored form of a time
(``format_utc``, ``UtcDateTime``), deterministic ids (``stable_id``), and stored documents (``Document``,
``TenantDocument``) with the partition key of every container (``CONTAINER_PARTITION_KEYS``).

Field names are camelCase on the wire and in documents, snake_case in Python. Documents carry the store's
``_etag`` and ``_ts`` when read back; writes never send them as data.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel


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
