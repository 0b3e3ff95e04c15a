"""Salesforce: Change-Data-Capture-shaped JSON from the signed Apex callout, or an Outbound Message (SOAP XML).

A JSON body is one change event or an array of them; each event is the CDC payload itself (``ChangeEventHeader``
beside the field values) or that payload wrapped as the Pub/Sub API and CometD deliver it (``payload`` or
``data.payload``). One change per record id: ``entityName`` is the entity type, the sObject API name as Salesforce
spells it (``Account``, ``Invoice__c``), exactly as the adapter's pulled records name it, so a record's external-id
link is the same whichever way it arrived; ``changeType`` is the operation (``UNDELETE`` restores, so it is a create),
``commitTimestamp`` (epoch ms) the time. ``changes`` holds the
field values the event carries, with ``nulledFields`` as None. Gap events (``GAP_*``) say a record changed without
saying how: the same operation with no fields, so the worker fetches. ``GAP_OVERFLOW`` names no record and wildcard
record ids (``001*``) name none in particular, so both carry nothing to enqueue: a full sync recovers them.
The delivery id is the Standard Webhooks ``webhook-id`` header the Apex callout signs, else the events'
``transactionKey:sequenceNumber`` pairs.
"""

from __future__ import annotations

from castiel.errors import InvalidMessage
from castiel.models import Operation, OutboundChange
from castiel.webhooks.parsers import salesforce_outbound
from castiel.webhooks.parsers.base import (
    JsonObject,
    ParsedDelivery,
    WebhookDelivery,
    decode_json,
    identifier,
    optional_epoch_time,
    optional_str,
    required_object,
    required_str,
    string_list,
)

_HEADER = "ChangeEventHeader"

_OPERATIONS = {
    "CREATE": Operation.CREATE,
    "UPDATE": Operation.UPDATE,
    "DELETE": Operation.DELETE,
    "UNDELETE": Operation.CREATE,
}


def parse(delivery: WebhookDelivery) -> ParsedDelivery:
    """Parse one Salesforce delivery, JSON change events or a SOAP Outbound Message."""
    if _is_xml(delivery):
        return salesforce_outbound.parse(delivery)
    decoded = decode_json(delivery.body)
    if isinstance(decoded, dict):
        events: list[object] = [decoded]
    elif isinstance(decoded, list):
        events = decoded
    else:
        raise InvalidMessage("body: expected a change event object or an array of them")
    changes: list[OutboundChange] = []
    keys: list[str] = []
    for index, item in enumerate(events):
        where = "body" if isinstance(decoded, dict) else f"body[{index}]"
        payload, where = _unwrap(item, where)
        header = required_object(payload, _HEADER, where)
        changes.extend(_event_changes(delivery, payload, header, f"{where}.{_HEADER}"))
        transaction = optional_str(header, "transactionKey", f"{where}.{_HEADER}")
        if transaction is not None and "sequenceNumber" in header:
            keys.append(f"{transaction}:{identifier(header, 'sequenceNumber', f'{where}.{_HEADER}')}")
    delivery_id = delivery.header("webhook-id") or (",".join(keys) if keys else None)
    return ParsedDelivery(changes=changes, delivery_id=delivery_id)


def _is_xml(delivery: WebhookDelivery) -> bool:
    content_type = (delivery.header("content-type") or "").lower()
    return "xml" in content_type or delivery.body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _unwrap(item: object, where: str) -> tuple[JsonObject, str]:
    for path in ((), ("payload",), ("data", "payload")):
        candidate = item
        for key in path:
            candidate = candidate.get(key) if isinstance(candidate, dict) else None
        if isinstance(candidate, dict) and _HEADER in candidate:
            return candidate, ".".join((where, *path))
    raise InvalidMessage(f"{where}: no {_HEADER} (expected a Salesforce Change Data Capture event)")


def _event_changes(
    delivery: WebhookDelivery, payload: JsonObject, header: JsonObject, where: str
) -> list[OutboundChange]:
    entity_name = required_str(header, "entityName", where)
    change_type = required_str(header, "changeType", where)
    if change_type == "GAP_OVERFLOW":
        return []
    is_gap = change_type.startswith("GAP_")
    operation = _OPERATIONS.get(change_type.removeprefix("GAP_"))
    if operation is None:
        raise InvalidMessage(f"{where}.changeType {change_type[:64]!r} is not a Change Data Capture change type")
    record_ids = string_list(header, "recordIds", where)
    if not record_ids:
        raise InvalidMessage(f"{where}.recordIds is missing or empty")
    fields = {} if is_gap else _fields(payload, header, where)
    timestamp = optional_epoch_time(header, "commitTimestamp", where, per_second=1000)
    return [
        delivery.change(
            entity_type=entity_name,
            external_id=record_id,
            operation=operation,
            changes=dict(fields),
            event_type=f"{entity_name}.{change_type}",
            timestamp=timestamp,
        )
        for record_id in record_ids
        if not record_id.endswith("*")
    ]


def _fields(payload: JsonObject, header: JsonObject, where: str) -> JsonObject:
    fields = {name: value for name, value in payload.items() if name != _HEADER}
    fields.update(dict.fromkeys(string_list(header, "nulledFields", where)))
    return fields
