"""Slack Events API: ``url_verification`` is the handshake, ``event_callback`` one event, ``event_id`` the delivery.

Synced: ``message`` events. A new message (no subtype, or a subtype that still posts content such as
``bot_message`` or ``thread_broadcast``) is a create keyed by its ``ts``; ``message_changed`` updates the edited
message (``message.ts``); ``message_deleted`` deletes ``deleted_ts``. A ``ts`` is unique only within its channel, so
the local key is ``<channel>:<ts>`` and ``channel`` travels in ``changes``. Joins, topic changes and every other event
type carry nothing to sync.
"""

from __future__ import annotations

from castiel.models import Operation, OutboundChange
from castiel.webhooks.parsers.base import (
    Handshake,
    JsonObject,
    ParsedDelivery,
    WebhookDelivery,
    as_object,
    decode_json,
    epoch_time,
    optional_str,
    pick,
    required_object,
    required_str,
)

_POSTING_SUBTYPES = frozenset({None, "bot_message", "me_message", "thread_broadcast", "file_share"})


def parse(delivery: WebhookDelivery) -> ParsedDelivery:
    """Parse one Slack Events API request."""
    envelope = as_object(decode_json(delivery.body), "body")
    kind = required_str(envelope, "type")
    if kind == "url_verification":
        # Slack accepts the challenge echoed as text/plain, the simplest of its three documented forms.
        challenge = required_str(envelope, "challenge")
        return ParsedDelivery(handshake=Handshake("slack_url_verification", 200, challenge.encode(), "text/plain"))
    delivery_id = optional_str(envelope, "event_id")
    if kind != "event_callback":
        return ParsedDelivery(delivery_id=delivery_id)
    event = required_object(envelope, "event")
    if required_str(event, "type", "event") != "message":
        return ParsedDelivery(delivery_id=delivery_id)
    change = _message_change(delivery, event)
    return ParsedDelivery(changes=[] if change is None else [change], delivery_id=delivery_id)


def _message_change(delivery: WebhookDelivery, event: JsonObject) -> OutboundChange | None:
    subtype = optional_str(event, "subtype", "event")
    channel = required_str(event, "channel", "event")
    # The event's own ts is when it happened: the post, the edit or the deletion.
    when = epoch_time(required_str(event, "ts", "event"), "event.ts")
    if subtype in _POSTING_SUBTYPES:
        message_ts = required_str(event, "ts", "event")
        operation, changes = Operation.CREATE, _message_fields(event)
    elif subtype == "message_changed":
        message = required_object(event, "message", "event")
        message_ts = required_str(message, "ts", "event.message")
        operation, changes = Operation.UPDATE, _message_fields(message)
    elif subtype == "message_deleted":
        message_ts = required_str(event, "deleted_ts", "event")
        operation, changes = Operation.DELETE, {}
    else:
        return None
    epoch_time(message_ts, "message ts")  # refuses an id that is not a Slack timestamp
    return delivery.change(
        entity_type="message",
        external_id=message_ts,
        operation=operation,
        changes={**changes, "channel": channel},
        event_type="message" if subtype is None else f"message.{subtype}",
        timestamp=when,
        local_key=f"{channel}:{message_ts}",
    )


def _message_fields(message: JsonObject) -> JsonObject:
    return pick(message, "text", "user", "bot_id", "thread_ts", "channel_type", "edited", "files")
