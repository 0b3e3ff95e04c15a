"""Standard Webhooks sources: ``{"type": "<entity>.<created|updated|deleted>", "timestamp": …, "data": {"id": …}}``.

The delivery id is the ``webhook-id`` header the signature covers. ``type`` splits at its last dot into the entity
type and the verb; a verb other than created/updated/deleted (``invoice.paid``) is an event the engine does not sync.
``data`` minus its ``id`` is ``changes``; ``timestamp`` is ISO-8601 as the specification's examples send it, or epoch
seconds.
"""

from __future__ import annotations

from castiel.models import Operation
from castiel.webhooks.parsers.base import (
    ParsedDelivery,
    WebhookDelivery,
    as_object,
    decode_json,
    identifier,
    optional_time,
    required_object,
    required_str,
)

_OPERATIONS = {"created": Operation.CREATE, "updated": Operation.UPDATE, "deleted": Operation.DELETE}


def parse(delivery: WebhookDelivery) -> ParsedDelivery:
    """Parse one Standard Webhooks delivery."""
    delivery_id = delivery.header("webhook-id")
    payload = as_object(decode_json(delivery.body), "body")
    event_type = required_str(payload, "type")
    entity_type, _, verb = event_type.rpartition(".")
    operation = _OPERATIONS.get(verb)
    if not entity_type or operation is None:
        return ParsedDelivery(delivery_id=delivery_id)
    data = required_object(payload, "data")
    change = delivery.change(
        entity_type=entity_type,
        external_id=identifier(data, "id", "data"),
        operation=operation,
        changes={name: value for name, value in data.items() if name != "id"},
        event_type=event_type,
        timestamp=optional_time(payload, "timestamp"),
    )
    return ParsedDelivery(changes=[change], delivery_id=delivery_id)
