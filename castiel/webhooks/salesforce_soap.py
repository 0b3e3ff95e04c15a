"""Salesforce Outbound Messages (SOAP): parse the envelope, check its OrganizationId, answer with the acknowledgement.

Outbound Messages carry no signature. What identifies the sender is the ``OrganizationId`` of the
``notifications`` call, compared constant-time with the org id configured on the registration. An org id is not a
secret, so this check only keeps other orgs' messages out; pair it with Salesforce's published IP ranges or a
client certificate at the edge, or prefer the signed Standard Webhooks callouts of ``infra/salesforce/``.

The XML is parsed with expat directly so that any DOCTYPE (and with it every entity declaration: billion laughs,
external entities) is refused before it is expanded. Salesforce never sends one.

Salesforce retries until it reads ``ACKNOWLEDGEMENT`` (``<Ack>true</Ack>`` in ``notificationsResponse``), so the
receiver answers that body, 200, ``ACK_CONTENT_TYPE``, once the message is stored.
"""

from __future__ import annotations

import hmac
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import NoReturn
from xml.parsers import expat

from castiel.errors import ConfigError, InvalidMessage, SignatureError

SOAP_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

ACK_CONTENT_TYPE = "text/xml; charset=utf-8"
"""The content type of ``ACKNOWLEDGEMENT``."""

ACKNOWLEDGEMENT = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>'
    b"</soapenv:Body>"
    b"</soapenv:Envelope>"
)
"""The response body Salesforce requires before it stops retrying a message."""

# An org id is the key prefix 00D plus 12 characters; the 18-character form appends a 3-character case checksum.
_ORGANIZATION_ID = re.compile(r"00D[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?")


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification of a message: its id (stable across Salesforce's retries) and the record it carries."""

    id: str
    object_type: str | None
    fields: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A parsed ``notifications`` call (up to 100 notifications of one object type)."""

    organization_id: str
    action_id: str | None
    notifications: tuple[Notification, ...]


def normalize_organization_id(value: str) -> str:
    """The 15-character form of an org id, so the 15- and 18-character spellings compare equal.

    Raises ``ConfigError`` for anything that is not an org id: this validates registration settings.
    """
    if not _ORGANIZATION_ID.fullmatch(value):
        raise ConfigError(f"not a Salesforce organization id (00D followed by 12 or 15 letters/digits): {value!r}")
    return value[:15]


def verify_organization(body: bytes, organization_id: str) -> OutboundMessage:
    """Parse ``body`` and check it comes from ``organization_id`` (already normalized); ``SignatureError`` if not."""
    try:
        message = parse_outbound_message(body)
    except InvalidMessage as exc:
        raise SignatureError(f"not a Salesforce outbound message: {exc}") from exc
    sent = message.organization_id[:15] if len(message.organization_id) == 18 else message.organization_id
    if not hmac.compare_digest(sent.encode(), organization_id.encode()):
        raise SignatureError("OrganizationId is not the registration's organization")
    return message


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """The ``notifications`` call in a SOAP envelope; ``InvalidMessage`` for anything else."""
    envelope = _parse_xml(body)
    if envelope.tag != f"{{{SOAP_ENVELOPE_NS}}}Envelope":
        raise InvalidMessage("the document is not a SOAP envelope")
    call = envelope.find(f"{{{SOAP_ENVELOPE_NS}}}Body/{{{OUTBOUND_NS}}}notifications")
    if call is None:
        raise InvalidMessage("the SOAP body has no outbound notifications element")
    organization_id = _child_text(call, "OrganizationId")
    if not organization_id:
        raise InvalidMessage("the message has no OrganizationId")
    return OutboundMessage(
        organization_id=organization_id,
        action_id=_child_text(call, "ActionId"),
        notifications=tuple(_notification(item) for item in call.iterfind(f"{{{OUTBOUND_NS}}}Notification")),
    )


def _notification(item: ET.Element) -> Notification:
    notification_id = _child_text(item, "Id")
    if not notification_id:
        raise InvalidMessage("a notification has no Id")
    record = item.find(f"{{{OUTBOUND_NS}}}sObject")
    if record is None:
        return Notification(id=notification_id, object_type=None)
    xsi_type = record.get(f"{{{XSI_NS}}}type")
    fields = {
        _local_name(child.tag): None if child.get(f"{{{XSI_NS}}}nil") == "true" else (child.text or "")
        for child in record
    }
    return Notification(
        id=notification_id,
        object_type=xsi_type.rpartition(":")[2] if xsi_type else None,
        fields=fields,
    )


def _child_text(parent: ET.Element, name: str) -> str | None:
    child = parent.find(f"{{{OUTBOUND_NS}}}{name}")
    if child is None or child.get(f"{{{XSI_NS}}}nil") == "true":
        return None
    return (child.text or "").strip()


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def _qualified(expat_name: str) -> str:
    # expat joins namespace and local name with the separator; ElementTree spells it "{namespace}local".
    namespace, separator, local = expat_name.rpartition("}")
    return f"{{{namespace}}}{local}" if separator else local


def _refuse_dtd(*_: object) -> NoReturn:
    raise InvalidMessage("DOCTYPE and entity declarations are not accepted")


def _parse_xml(body: bytes) -> ET.Element:
    builder = ET.TreeBuilder()
    # Salesforce sends UTF-8; forcing it keeps a declared encoding from reaching Python's codec machinery.
    parser = expat.ParserCreate(encoding="utf-8", namespace_separator="}")
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    parser.StartElementHandler = lambda name, attributes: builder.start(
        _qualified(name), {_qualified(key): value for key, value in attributes.items()}
    )
    parser.EndElementHandler = lambda name: builder.end(_qualified(name))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise InvalidMessage(f"malformed XML: {expat.ErrorString(exc.code)}") from exc
    return builder.close()
