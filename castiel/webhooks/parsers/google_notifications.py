"""Which Google notification a Pub/Sub message is, read from its attributes (and data): entity, id and operation.

Tried in order; the first that recognises the message decides:

1. Google Workspace Events (CloudEvents attributes ``ce-type``, ``ce-subject``, ``ce-time``), e.g. ``ce-type``
   ``google.workspace.chat.message.v1.created`` with subject ``//chat.googleapis.com/spaces/S/messages/M``: entity
   type ``message`` (the segment before the version), external id ``spaces/S/messages/M`` (the subject's resource
   name), verb ``created``/``batchCreated`` → create, ``deleted``/``batchDeleted`` → delete, any other → update.
   Subscription lifecycle events (``google.workspace.events.subscription.*``) concern the subscription, not data:
   nothing to sync.
2. Drive and Calendar push-channel notifications relayed to Pub/Sub with their ``X-Goog-*`` headers as attributes
   (those APIs call HTTPS endpoints, not Pub/Sub): ``X-Goog-Resource-State`` ``add``/``untrash`` → create,
   ``remove``/``trash``/``not_exists`` → delete, ``sync`` (the channel's opening message) → nothing, any other →
   update; external id ``X-Goog-Resource-ID``; entity type from the resource URI's collection (``files`` → ``file``,
   ``events`` → ``event``). They carry no content: the worker fetches ``resource_uri``.
3. Gmail ``users.watch`` notifications: no attributes, data ``{"emailAddress", "historyId"}`` → an update of entity
   ``mailbox`` keyed by the address; the worker reads history since ``historyId``.
4. Publishers we control set ``entityType``, ``entityId`` and optionally ``operation`` (create/update/delete, default
   update), ``eventType`` and ``timestamp`` attributes.
5. Anything else is a create of entity type ``event`` keyed by the Pub/Sub ``messageId``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from castiel.errors import InvalidMessage
from castiel.models import Operation
from castiel.webhooks.parsers.base import JsonObject, parse_iso_time


@dataclass(frozen=True, slots=True)
class Notification:
    """What a message is about; ``operation`` None means it concerns nothing we sync."""

    entity_type: str
    external_id: str
    operation: Operation | None
    event_type: str
    timestamp: datetime | None = None
    extra: JsonObject = field(default_factory=dict)
    """Fields to add to the decoded data in ``changes``."""


Attributes = Mapping[str, str]

_VERSION = re.compile(r"v\d+(?:[a-z]+\d*)?")

_VERB_OPERATIONS = {"created": Operation.CREATE, "deleted": Operation.DELETE}

_CHANNEL_OPERATIONS = {
    "add": Operation.CREATE,
    "untrash": Operation.CREATE,
    "remove": Operation.DELETE,
    "trash": Operation.DELETE,
    "not_exists": Operation.DELETE,
}

_COLLECTIONS = {"files": "file", "changes": "change", "events": "event", "calendars": "calendar"}


def describe(attributes: Attributes, data: JsonObject, message_id: str) -> Notification:
    """The notification this message carries (see the module docstring for the order and mappings)."""
    for reader in _READERS:
        notification = reader(attributes, data)
        if notification is not None:
            return notification
    return Notification("event", message_id, Operation.CREATE, "pubsub.message")


def _time(attributes: Attributes, name: str) -> datetime | None:
    value = attributes.get(name)
    return None if value is None else parse_iso_time(value, f"attribute {name}")


def _workspace_event(attributes: Attributes, _data: JsonObject) -> Notification | None:
    event_type = attributes.get("ce-type")
    if event_type is None:
        return None
    *path, verb = event_type.split(".")
    if path and _VERSION.fullmatch(path[-1]):
        path.pop()
    subject = attributes.get("ce-subject") or attributes.get("ce-source")
    if not path or not path[-1] or not verb or not subject:
        raise InvalidMessage(f"attributes ce-type {event_type[:80]!r} and ce-subject do not name a resource and a verb")
    lifecycle = event_type.startswith("google.workspace.events.subscription.")
    action = verb.removeprefix("batch").lower()
    return Notification(
        entity_type=path[-1],
        external_id=_resource_name(subject),
        operation=None if lifecycle else _VERB_OPERATIONS.get(action, Operation.UPDATE),
        event_type=event_type,
        timestamp=_time(attributes, "ce-time"),
    )


def _resource_name(subject: str) -> str:
    """``//chat.googleapis.com/spaces/S/messages/M`` → ``spaces/S/messages/M``; other subjects as they are."""
    if not subject.startswith("//"):
        return subject
    return subject[2:].partition("/")[2] or subject


def _channel_notification(attributes: Attributes, _data: JsonObject) -> Notification | None:
    lowered = {name.lower(): value for name, value in attributes.items()}
    state = lowered.get("x-goog-resource-state")
    if state is None:
        return None
    resource_id = lowered.get("x-goog-resource-id")
    if not resource_id:
        raise InvalidMessage("attribute X-Goog-Resource-ID is missing beside X-Goog-Resource-State")
    uri = lowered.get("x-goog-resource-uri", "")
    extra = {
        "resource_uri": uri,
        "channel_id": lowered.get("x-goog-channel-id"),
        "message_number": lowered.get("x-goog-message-number"),
        "changed": lowered.get("x-goog-changed"),
    }
    return Notification(
        entity_type=_entity_of(uri),
        external_id=resource_id,
        operation=None if state == "sync" else _CHANNEL_OPERATIONS.get(state, Operation.UPDATE),
        event_type=f"channel.{state}",
        extra={name: value for name, value in extra.items() if value is not None},
    )


def _entity_of(uri: str) -> str:
    segments = urlsplit(uri).path.split("/")
    return next((_COLLECTIONS[segment] for segment in reversed(segments) if segment in _COLLECTIONS), "resource")


def _gmail(attributes: Attributes, data: JsonObject) -> Notification | None:
    address = data.get("emailAddress")
    if attributes or not isinstance(address, str) or not address or "historyId" not in data:
        return None
    return Notification("mailbox", address, Operation.UPDATE, "gmail.history")


def _explicit(attributes: Attributes, _data: JsonObject) -> Notification | None:
    entity_type, entity_id = attributes.get("entityType"), attributes.get("entityId")
    if not entity_type or not entity_id:
        return None
    operation = attributes.get("operation", Operation.UPDATE.value)
    try:
        parsed = Operation(operation)
    except ValueError as exc:
        raise InvalidMessage(f"attribute operation {operation[:32]!r} is not create, update or delete") from exc
    return Notification(
        entity_type=entity_type,
        external_id=entity_id,
        operation=parsed,
        event_type=attributes.get("eventType", "pubsub.message"),
        timestamp=_time(attributes, "timestamp"),
    )


_READERS: tuple[Callable[[Attributes, JsonObject], Notification | None], ...] = (
    _workspace_event,
    _channel_notification,
    _gmail,
    _explicit,
)
