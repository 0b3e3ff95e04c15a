"""Google Cloud Pub/Sub push: ``{"message": {"data", "attributes", "messageId", "publishTime"}, "subscription"}``.

The delivery id is ``messageId`` (Pub/Sub redelivers with the same one; push bodies also spell it ``message_id``).
``data`` is base64 (standard or URL-safe, as the protobuf JSON mapping allows); decoded, a JSON object becomes
``changes`` as it is, another JSON value or UTF-8 text ``{"data": …}``, and binary stays ``{"data_base64": …}``.
What the message is about comes from ``google_notifications``; the time is the notification's own, else
``publishTime``.
"""

from __future__ import annotations

import base64
import binascii

import orjson

from castiel.errors import InvalidMessage
from castiel.webhooks.parsers.base import (
    JsonObject,
    ParsedDelivery,
    WebhookDelivery,
    as_object,
    decode_json,
    optional_iso_time,
    optional_str,
    required_object,
)
from castiel.webhooks.parsers.google_notifications import describe


def parse(delivery: WebhookDelivery) -> ParsedDelivery:
    """Parse one Pub/Sub push request."""
    envelope = as_object(decode_json(delivery.body), "body")
    message = required_object(envelope, "message")
    message_id = optional_str(message, "messageId", "message") or optional_str(message, "message_id", "message")
    if not message_id:
        raise InvalidMessage("message.messageId is missing or empty")
    data = _data(message)
    notification = describe(_attributes(message), data, message_id)
    if notification.operation is None:
        return ParsedDelivery(delivery_id=message_id)
    published = optional_iso_time(message, "publishTime", "message") or optional_iso_time(
        message, "publish_time", "message"
    )
    change = delivery.change(
        entity_type=notification.entity_type,
        external_id=notification.external_id,
        operation=notification.operation,
        changes={**data, **notification.extra},
        event_type=notification.event_type,
        timestamp=notification.timestamp or published,
    )
    return ParsedDelivery(changes=[change], delivery_id=message_id)


def _attributes(message: JsonObject) -> dict[str, str]:
    attributes = message.get("attributes")
    if attributes is None:
        return {}
    checked = as_object(attributes, "message.attributes")
    if not all(isinstance(value, str) for value in checked.values()):
        raise InvalidMessage("message.attributes: every attribute value must be a string")
    return checked


def _data(message: JsonObject) -> JsonObject:
    encoded = optional_str(message, "data", "message")
    if not encoded:
        return {}
    raw = _base64(encoded)
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return {"data": raw.decode("utf-8")}
        except UnicodeDecodeError:
            return {"data_base64": encoded}
    return decoded if isinstance(decoded, dict) else {"data": decoded}


def _base64(encoded: str) -> bytes:
    standard = encoded.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidMessage("message.data is not valid base64") from exc
