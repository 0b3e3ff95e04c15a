"""Notion: the ``verification_token`` POST is the handshake; every other body is one event, ``id`` its delivery.

Events carry ids, not content (Notion's design: the outbound worker fetches the page or database), so ``changes``
holds only the ids the event names: workspace, parent, updated properties and blocks. The entity type comes from the
event type's prefix, because ``entity.type`` says ``block`` for a linked database. ``*.created`` and ``*.undeleted``
(restored from the trash) are creates, ``*.deleted`` (moved to the trash) a delete, and every other verb
(``content_updated``, ``properties_updated``, ``moved`` …) an update. Resources we do not sync (``file_upload.*``)
carry nothing.
"""

from __future__ import annotations

from castiel.models import Operation
from castiel.webhooks.parsers.base import (
    Handshake,
    ParsedDelivery,
    WebhookDelivery,
    as_object,
    decode_json,
    optional_iso_time,
    optional_object,
    pick,
    required_object,
    required_str,
)

_VERIFICATION_RESPONSE = b'{"ok":true}'

_ENTITY_TYPES = {"page": "page", "database": "database", "data_source": "data_source", "comment": "comment"}

_OPERATIONS = {"created": Operation.CREATE, "undeleted": Operation.CREATE, "deleted": Operation.DELETE}


def parse(delivery: WebhookDelivery) -> ParsedDelivery:
    """Parse one Notion webhook request."""
    payload = as_object(decode_json(delivery.body), "body")
    if "verification_token" in payload:
        return ParsedDelivery(
            handshake=Handshake(
                "notion_verification",
                200,
                _VERIFICATION_RESPONSE,
                "application/json",
                verification_token=required_str(payload, "verification_token"),
            )
        )
    delivery_id = required_str(payload, "id")
    event_type = required_str(payload, "type")
    resource, _, verb = event_type.rpartition(".")
    entity_type = _ENTITY_TYPES.get(resource)
    if entity_type is None:
        return ParsedDelivery(delivery_id=delivery_id)
    entity = required_object(payload, "entity")
    data = optional_object(payload, "data") or {}
    change = delivery.change(
        entity_type=entity_type,
        external_id=required_str(entity, "id", "entity"),
        operation=_OPERATIONS.get(verb, Operation.UPDATE),
        changes={
            **pick(payload, "workspace_id"),
            **pick(data, "parent", "page_id", "updated_properties", "updated_blocks"),
        },
        event_type=event_type,
        timestamp=optional_iso_time(payload, "timestamp"),
    )
    return ParsedDelivery(changes=[change], delivery_id=delivery_id)
