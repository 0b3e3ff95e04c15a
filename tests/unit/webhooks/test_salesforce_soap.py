"""Salesforce Outbound Messages: the envelope as Salesforce sends it, the OrganizationId check, the acknowledgement."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from castiel.errors import ConfigError, InvalidMessage, SignatureError
from castiel.models import Provider
from castiel.webhooks.salesforce_soap import (
    ACKNOWLEDGEMENT,
    OUTBOUND_NS,
    SOAP_ENVELOPE_NS,
    normalize_organization_id,
    parse_outbound_message,
    verify_organization,
)
from castiel.webhooks.verifiers import build_verifier

ORG_18 = "00D5g000004CzIuEAK"
ORG_15 = ORG_18[:15]
OTHER_ORG = "00D5g000004CzIvEAK"


def envelope(organization_id: str = ORG_18, *, prolog: str = "", notifications: str | None = None) -> bytes:
    if notifications is None:
        notifications = """
   <Notification>
    <Id>04l5e00000HQ8PnAAL</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>0035e00000QxLbAAAV</sf:Id>
     <sf:Email>ada@example.com</sf:Email>
     <sf:Phone xsi:nil="true"/>
     <sf:Title></sf:Title>
    </sObject>
   </Notification>
   <Notification>
    <Id>04l5e00000HQ8PoAAL</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>0035e00000QxLbBAAV</sf:Id>
    </sObject>
   </Notification>"""
    return f"""<?xml version="1.0" encoding="UTF-8"?>{prolog}
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{organization_id}</OrganizationId>
   <ActionId>04k5e000000CaSbAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/60.0/{ORG_15}</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/60.0/{ORG_15}</PartnerUrl>{notifications}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


def test_the_notifications_call_is_read_as_salesforce_sends_it() -> None:
    message = parse_outbound_message(envelope())
    assert (message.organization_id, message.action_id) == (ORG_18, "04k5e000000CaSbAAK")
    assert [(n.id, n.object_type) for n in message.notifications] == [
        ("04l5e00000HQ8PnAAL", "Contact"),
        ("04l5e00000HQ8PoAAL", "Contact"),
    ]
    assert message.notifications[0].fields == {
        "Id": "0035e00000QxLbAAAV",
        "Email": "ada@example.com",
        "Phone": None,
        "Title": "",
    }


@pytest.mark.parametrize("configured", [ORG_18, ORG_15], ids=["18-char", "15-char"])
@pytest.mark.parametrize("sent", [ORG_18, ORG_15], ids=["sends-18", "sends-15"])
async def test_the_registrations_organization_verifies_in_either_id_form(configured: str, sent: str) -> None:
    verifier = build_verifier(Provider.SALESFORCE, [], {"organizationId": configured})
    verified = await verifier.verify({"Content-Type": "text/xml"}, envelope(sent), 0)
    assert (verified.scheme, verified.subject) == ("salesforce_soap", sent)


BILLION_LAUGHS = """
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>"""
EXTERNAL_ENTITY = """
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>"""

REFUSED = [
    (envelope(OTHER_ORG), "OrganizationId is not the registration's organization"),
    (envelope(ORG_18.lower()), "OrganizationId is not the registration's organization"),
    (envelope("00D5g000004CzIu"[:-1]), "OrganizationId is not the registration's organization"),
    (envelope("00D5g000004CzIué"), "OrganizationId is not the registration's organization"),
    (envelope(""), "the message has no OrganizationId"),
    (envelope(prolog=BILLION_LAUGHS), "DOCTYPE and entity declarations are not accepted"),
    (envelope(prolog=EXTERNAL_ENTITY), "DOCTYPE and entity declarations are not accepted"),
    (envelope().replace(b"<sObject", b"<sObject>&lol2;</sObject><x", 1), "malformed XML"),
    (b"", "malformed XML: no element found"),
    (b'{"OrganizationId": "00D5g000004CzIuEAK"}', "malformed XML: not well-formed"),
    (envelope()[:-20], "malformed XML"),
    (b'<?xml version="1.0" encoding="x-unknown"?><a/>', "not a SOAP envelope"),
    (envelope(OTHER_ORG).replace(b"UTF-8", b"shift_jis"), "OrganizationId is not the registration's organization"),
    (envelope().replace(SOAP_ENVELOPE_NS.encode(), b"urn:not-soap"), "not a SOAP envelope"),
    (envelope().replace(OUTBOUND_NS.encode(), b"urn:other"), "no outbound notifications element"),
    (envelope(notifications="<Notification><Id/></Notification>"), "a notification has no Id"),
]


@pytest.mark.parametrize(("body", "reason"), REFUSED, ids=[reason for _, reason in REFUSED])
def test_anything_but_our_organizations_message_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_organization(body, ORG_15)


@pytest.mark.parametrize("declared", [b"UTF-8", b"shift_jis", b"x-unknown", b"rot13"])
def test_the_body_is_read_as_utf8_whatever_encoding_it_declares(declared: bytes) -> None:
    assert verify_organization(envelope().replace(b"UTF-8", declared), ORG_15).organization_id == ORG_18


def test_parse_errors_are_invalid_messages_outside_verification() -> None:
    with pytest.raises(InvalidMessage, match="DOCTYPE"):
        parse_outbound_message(envelope(prolog=BILLION_LAUGHS))


def test_a_message_may_carry_a_notification_without_an_sobject() -> None:
    message = parse_outbound_message(envelope(notifications="<Notification><Id>04l5e00000HQ8PnAAL</Id></Notification>"))
    assert [(n.id, n.object_type, n.fields) for n in message.notifications] == [("04l5e00000HQ8PnAAL", None, {})]


def test_the_acknowledgement_is_the_notifications_response_salesforce_expects() -> None:
    root = ET.fromstring(ACKNOWLEDGEMENT)  # noqa: S314 - our own constant
    ack = root.find(f"{{{SOAP_ENVELOPE_NS}}}Body/{{{OUTBOUND_NS}}}notificationsResponse/{{{OUTBOUND_NS}}}Ack")
    assert root.tag == f"{{{SOAP_ENVELOPE_NS}}}Envelope"
    assert ack is not None
    assert ack.text == "true"


@pytest.mark.parametrize("value", ["", "001000000000001AAA", "00D5g000004CzI", "00D5g000004CzIuEA", "00D5g000004CzIu!"])
def test_a_registration_needs_a_real_organization_id(value: str) -> None:
    with pytest.raises(ConfigError, match="not a Salesforce organization id"):
        normalize_organization_id(value)


XML_PIECES = st.sampled_from(
    [
        "<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>",
        "<soapenv:Body>",
        "<notifications xmlns='http://soap.sforce.com/2005/09/outbound'>",
        f"<OrganizationId>{ORG_18}</OrganizationId>",
        "<Notification><Id>04l5e00000HQ8PnAAL</Id>",
        "<sObject xsi:type='sf:Contact' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'>",
        "</sObject>",
        "</Notification>",
        "</notifications>",
        "</soapenv:Body>",
        "</soapenv:Envelope>",
        "<!DOCTYPE x>",
        "<!ENTITY e 'x'>",
        "&e;",
        "<![CDATA[",
        "]]>",
        "<?pi?>",
    ]
)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(XML_PIECES, st.text(max_size=10)), max_size=14).map(lambda parts: "".join(parts).encode()),
)


@settings(max_examples=200, deadline=None)
@given(body=BODIES)
def test_fuzzed_bodies_only_ever_raise_signature_error(body: bytes) -> None:
    # No fuzzed body can carry another org's message past the check; a well-formed one of ours may verify.
    try:
        message = verify_organization(body, ORG_15)
    except SignatureError:
        return
    assert message.organization_id == ORG_18
