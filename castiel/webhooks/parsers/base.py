"""What every provider parser shares: the result types, the delivery at hand, and strict JSON field access.

Parsers are pure: the body has already been verified, nothing here does I/O, and the only exception any input can
raise is ``InvalidMessage`` whose text tells the sender what is wrong and where
(``issue.id: expected a non-empty string or integer id, got list``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from castiel.errors import InvalidMessage
from castiel.models import ChangeOrigin, Operation, OutboundChange, WebhookRegistration

JsonObject = dict[str, Any]

MAX_CHANGE_DEPTH = 32
"""How deeply the values in ``changes`` may nest; deeper payloads are refused rather than failing to serialise."""

HandshakeKind = Literal["slack_url_verification", "github_ping", "notion_verification"]


@dataclass(frozen=True, slots=True)
class Handshake:
    """A provider handshake: answer with exactly this, enqueue nothing."""

    kind: HandshakeKind
    status_code: int
    body: bytes
    content_type: str
    verification_token: str | None = None
    """Notion's token; the caller stores it as *pending* until an operator confirms it."""


@dataclass(frozen=True, slots=True)
class ParsedDelivery:
    """A verified request, understood: the changes to enqueue, the provider's delivery id, or a handshake."""

    changes: list[OutboundChange] = field(default_factory=list)
    delivery_id: str | None = None
    handshake: Handshake | None = None


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One request being parsed; builds the ``OutboundChange``s that carry the registration's identity."""

    registration: WebhookRegistration
    headers: Mapping[str, str]
    """Header names lower-cased (HTTP header names are case-insensitive)."""
    body: bytes
    correlation_id: str
    received_at: datetime

    def header(self, name: str) -> str | None:
        """A header by its lower-case name, or None."""
        return self.headers.get(name)

    def change(
        self,
        *,
        entity_type: str,
        external_id: str,
        operation: Operation,
        changes: JsonObject,
        event_type: str,
        timestamp: datetime | None = None,
        local_key: str | None = None,
    ) -> OutboundChange:
        """An ``OutboundChange`` from this delivery.

        ``entity_id`` is ``<provider>:<entity type>:<key>``: the entity type is part of it because provider ids are
        only unique per kind of object (a GitHub issue and a comment can share a numeric id). ``local_key`` replaces
        the external id in it where that alone is not unique (a Slack ``ts`` is unique per channel only).
        """
        if _nests_deeper_than(changes, MAX_CHANGE_DEPTH):
            raise InvalidMessage(f"the {entity_type} fields nest deeper than {MAX_CHANGE_DEPTH} levels")
        registration = self.registration
        return OutboundChange(
            integration_id=registration.integration_id,
            tenant_id=registration.tenant_id,
            connection_id=registration.connection_id,
            entity_type=entity_type,
            entity_id=f"{registration.provider.value}:{entity_type}:{local_key or external_id}",
            external_id=external_id,
            operation=operation,
            changes=changes,
            timestamp=timestamp or self.received_at,
            origin=ChangeOrigin.WEBHOOK,
            event_type=event_type,
            correlation_id=self.correlation_id,
        )


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers keyed by lower-case name."""
    return {name.lower(): value for name, value in headers.items()}


# ---------------------------------------------------------------- JSON


def _nests_deeper_than(value: object, limit: int) -> bool:
    """Whether ``value`` nests objects and arrays more than ``limit`` levels; level by level, stopping at the limit."""
    level: list[Any] = [value] if isinstance(value, (dict, list)) else []
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


def pick(obj: JsonObject, *keys: str) -> JsonObject:
    """The entries of ``obj`` under ``keys`` that are present, values as sent."""
    return {key: obj[key] for key in keys if key in obj}


def decode_json(body: bytes | str, where: str = "body") -> Any:
    """Parse JSON strictly (no NaN, bounded nesting); any failure is ``InvalidMessage`` naming ``where``."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"{where} is not valid JSON: {exc}") from exc


def _describe(value: object) -> str:
    return "null" if value is None else type(value).__name__


def as_object(value: object, where: str) -> JsonObject:
    """``value`` as a JSON object, or ``InvalidMessage``."""
    if not isinstance(value, dict):
        raise InvalidMessage(f"{where}: expected a JSON object, got {_describe(value)}")
    return value


def _as_list(value: object, where: str) -> list[Any]:
    """``value`` as a JSON array, or ``InvalidMessage``."""
    if not isinstance(value, list):
        raise InvalidMessage(f"{where}: expected a JSON array, got {_describe(value)}")
    return value


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def required_object(obj: JsonObject, key: str, where: str = "") -> JsonObject:
    """``obj[key]`` as an object; missing or another type is ``InvalidMessage``."""
    path = _path(where, key)
    if key not in obj:
        raise InvalidMessage(f"{path} is missing")
    return as_object(obj[key], path)


def optional_object(obj: JsonObject, key: str, where: str = "") -> JsonObject | None:
    """``obj[key]`` as an object, None when absent or null."""
    value = obj.get(key)
    return None if value is None else as_object(value, _path(where, key))


def required_str(obj: JsonObject, key: str, where: str = "") -> str:
    """``obj[key]`` as a non-empty string."""
    value = optional_str(obj, key, where)
    if not value:
        raise InvalidMessage(f"{_path(where, key)} is missing or empty")
    return value


def optional_str(obj: JsonObject, key: str, where: str = "") -> str | None:
    """``obj[key]`` as a string, None when absent or null."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidMessage(f"{_path(where, key)}: expected a string, got {_describe(value)}")
    return value


def identifier(obj: JsonObject, key: str, where: str = "") -> str:
    """``obj[key]`` as an id: a non-empty string or an integer, returned as text."""
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise InvalidMessage(f"{_path(where, key)}: expected a non-empty string or integer id, got {_describe(value)}")


def string_list(obj: JsonObject, key: str, where: str = "") -> list[str]:
    """``obj[key]`` as a list of strings; absent or null is empty."""
    path = _path(where, key)
    value = obj.get(key)
    if value is None:
        return []
    items = _as_list(value, path)
    if not all(isinstance(item, str) for item in items):
        raise InvalidMessage(f"{path}: expected an array of strings")
    return items


def names_of(obj: JsonObject, key: str, name_key: str, where: str = "") -> list[str]:
    """The ``name_key`` strings of the objects in the array ``obj[key]`` (label names, assignee logins)."""
    path = _path(where, key)
    value = obj.get(key)
    if value is None:
        return []
    names = []
    for index, item in enumerate(_as_list(value, path)):
        names.append(required_str(as_object(item, f"{path}[{index}]"), name_key, f"{path}[{index}]"))
    return names


# ---------------------------------------------------------------- time


def parse_iso_time(value: str, where: str) -> datetime:
    """An ISO-8601 time as aware UTC; a time without an offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidMessage(f"{where}: not an ISO-8601 time: {value[:64]!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def optional_iso_time(obj: JsonObject, key: str, where: str = "") -> datetime | None:
    """``obj[key]`` parsed as an ISO-8601 time, None when absent or null."""
    value = optional_str(obj, key, where)
    return None if value is None else parse_iso_time(value, _path(where, key))


def epoch_time(value: object, where: str, *, per_second: int = 1) -> datetime:
    """Epoch seconds (or milliseconds with ``per_second=1000``; numeric text accepted) as aware UTC."""
    number: float
    if isinstance(value, bool):
        raise InvalidMessage(f"{where}: expected an epoch time, got bool")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError as exc:
            raise InvalidMessage(f"{where}: not an epoch time: {value[:64]!r}") from exc
    else:
        raise InvalidMessage(f"{where}: expected an epoch time, got {_describe(value)}")
    if not math.isfinite(number):
        raise InvalidMessage(f"{where}: not a finite epoch time")
    try:
        return datetime.fromtimestamp(number / per_second, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidMessage(f"{where}: epoch time out of range") from exc


def optional_epoch_time(obj: JsonObject, key: str, where: str = "", *, per_second: int = 1) -> datetime | None:
    """``obj[key]`` as an epoch time (see ``epoch_time``), None when absent or null."""
    value = obj.get(key)
    return None if value is None else epoch_time(value, _path(where, key), per_second=per_second)


def optional_time(obj: JsonObject, key: str, where: str = "") -> datetime | None:
    """``obj[key]`` as ISO-8601 text or epoch seconds, None when absent or null."""
    value = obj.get(key)
    if isinstance(value, str):
        return parse_iso_time(value, _path(where, key))
    return optional_epoch_time(obj, key, where)
