"""Salesforce Outbound Messages (SOAP ``notifications``, up to 100 ``Notification``s) → changes.

The envelope is read by ``castiel.webhooks.salesforce_soap`` (the same reader that checks the ``OrganizationId``;
it refuses any DOCTYPE). Each ``Notification`` carries the record's state in an ``sObject`` whose ``xsi:type``
(``sf:Contact``) names the entity (``Contact``, the sObject API name, as the adapter's records name it); Salesforce
sends no operation and no diff, so every notification is an update of the record in ``Id`` with the configured
fields as ``changes`` (``xsi:nil`` fields None), timed by ``LastModifiedDate`` when it is sent. The delivery id is
the notification ``Id`` (Salesforce's redelivery key), or the sorted ``Id``s joined by commas when one message
batches several.
"""

from __future__ import annotations

from castiel.errors import InvalidMessage
from castiel.models import Operation, OutboundChange
from castiel.webhooks.parsers.base import ParsedDelivery, WebhookDelivery, parse_iso_time
from castiel.webhooks.salesforce_soap import Notification, parse_outbound_message


def parse(delivery: WebhookDelivery) -> ParsedDelivery:
    """Parse one Outbound Message SOAP request."""
    message = parse_outbound_message(delivery.body)
    if not message.notifications:
        raise InvalidMessage("the outbound message carries no Notification")
    changes = [_change(delivery, item, f"Notification {item.id}") for item in message.notifications]
    return ParsedDelivery(changes=changes, delivery_id=",".join(sorted(item.id for item in message.notifications)))


def _change(delivery: WebhookDelivery, item: Notification, where: str) -> OutboundChange:
    if not item.object_type:
        raise InvalidMessage(f"{where}: no sObject with an xsi:type naming its entity")
    fields: dict[str, object] = {name: value for name, value in item.fields.items() if name != "Id"}
    record_id = item.fields.get("Id")
    if not record_id:
        raise InvalidMessage(f"{where}: sObject Id is missing or empty")
    modified = item.fields.get("LastModifiedDate")
    return delivery.change(
        entity_type=item.object_type,
        external_id=record_id,
        operation=Operation.UPDATE,
        changes=fields,
        event_type="outbound_message",
        timestamp=parse_iso_time(modified, f"{where}: LastModifiedDate") if modified else None,
    )
