"""Salesforce Outbound Messages: a SOAP ``notifications`` call carrying up to 100 ``Notification``s.

Each ``Notification`` has its own ``Id`` (Salesforce's redelivery key) and an ``sObject`` whose ``xsi:type``
(``sf:Contact``) names the entity and whose children are the fields the outbound message was configured to send.
Salesforce sends the record's state, not a diff, and no operation, so every notification is an update of the record
in ``sf:Id``. Nested sObjects (``sf:Account`` on a Contact) become nested objects, ``xsi:nil`` fields None. The
delivery id is the notification ``Id``, or the sorted ``Id``s joined by commas when the message batches several.
Checking ``OrganizationId`` and answering with the acknowledgement are the verifier's and receiver's jobs.
"""

from __future__ import annotations

from castiel.errors import InvalidMessage
from castiel.models import Operation, OutboundChange
from castiel.webhooks.parsers.base import Delivery, JsonObject, ParsedDelivery, parse_iso_time
from castiel.webhooks.parsers.safe_xml import Element, parse_xml

_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


def parse(delivery: Delivery) -> ParsedDelivery:
    """Parse one Outbound Message SOAP request."""
    notifications = _find(parse_xml(delivery.body), "notifications")
    if notifications is None:
        raise InvalidMessage("SOAP body has no notifications element (expected a Salesforce Outbound Message)")
    items = [child for child in notifications.children if child.local_name == "Notification"]
    if not items:
        raise InvalidMessage("notifications carries no Notification")
    ids: list[str] = []
    changes: list[OutboundChange] = []
    for index, item in enumerate(items):
        notification_id, change = _notification(delivery, item, f"Notification[{index}]")
        ids.append(notification_id)
        changes.append(change)
    return ParsedDelivery(changes=changes, delivery_id=",".join(sorted(ids)))


def _find(root: Element, local_name: str) -> Element | None:
    pending = [root]
    while pending:
        element = pending.pop(0)
        if element.local_name == local_name:
            return element
        pending.extend(element.children)
    return None


def _required_text(parent: Element, local_name: str, where: str) -> str:
    child = parent.child(local_name)
    if child is None or not child.text:
        raise InvalidMessage(f"{where}.{local_name} is missing or empty")
    return child.text


def _notification(delivery: Delivery, item: Element, where: str) -> tuple[str, OutboundChange]:
    notification_id = _required_text(item, "Id", where)
    record = item.child("sObject")
    if record is None:
        raise InvalidMessage(f"{where}.sObject is missing")
    sobject_type = record.attributes.get(f"{_XSI}type", "").rpartition(":")[2]
    if not sobject_type:
        raise InvalidMessage(f"{where}.sObject has no xsi:type naming its entity")
    fields = _fields(record)
    record_id = fields.pop("Id", None)
    if not isinstance(record_id, str) or not record_id:
        raise InvalidMessage(f"{where}.sObject.Id is missing or empty")
    modified = fields.get("LastModifiedDate")
    change = delivery.change(
        entity_type=sobject_type.lower(),
        external_id=record_id,
        operation=Operation.UPDATE,
        changes=fields,
        event_type="outbound_message",
        timestamp=parse_iso_time(modified, f"{where}.sObject.LastModifiedDate") if isinstance(modified, str) else None,
    )
    return notification_id, change


def _fields(record: Element) -> JsonObject:
    fields: JsonObject = {}
    for field in record.children:
        if field.attributes.get(f"{_XSI}nil") == "true":
            fields[field.local_name] = None
        elif field.children:
            fields[field.local_name] = _fields(field)
        else:
            fields[field.local_name] = field.text
    return fields
