"""A Salesforce record pulled through the adapter and the same record arriving by webhook — a Change Data Capture event
signed by the sandbox, or an Outbound Message — name one external-id link: the entity type is the sObject API name as
Salesforce spells it (``Account``) on both paths, so a webhook's change finds the shard the pull made."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from castiel.models import Connection, Operation, OutboundChange, WebhookRegistration
from castiel.sandbox.webhooks import WebhookSender
from castiel.sync.dedup import link_id
from castiel.webhooks.events import parse_delivery
from tests.integration.sync.world import SALESFORCE, World

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RECEIVER = "https://receiver.test/webhooks/reg-sf/events"
OUTBOUND_MESSAGE = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5e000000ABCDEAZ</OrganizationId>
   <ActionId>04k5e000000GmaRAAS</ActionId>
   <Notification>
    <Id>04l5e00000HQ8PnAAL</Id>
    <sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{record_id}</sf:Id>
     <sf:LastModifiedDate>2025-01-03T00:00:00.000Z</sf:LastModifiedDate>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
"""


def parsed(connection: Connection, headers: httpx.Headers | dict[str, str], body: bytes) -> OutboundChange:
    registration = WebhookRegistration(
        id="reg-sf",
        tenant_id=connection.tenant_id,
        provider=connection.provider,
        connection_id=connection.id,
        integration_id=connection.integration_id,
    )
    delivery = parse_delivery(registration, headers, body, correlation_id="corr", received_at=datetime.now(UTC))
    [change] = delivery.changes
    return change


async def change_event(world: World, connection: Connection, record: dict[str, Any]) -> OutboundChange:
    """The sandbox's signed Change Data Capture event for ``record``, as the receiver parses it."""
    sent: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202)

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        sender = WebhookSender(http, world.sandbox.signing_key, clock=world.clock)
        await sender.send("salesforce", RECEIVER, Operation.UPDATE, record, secret=SECRET)
    return parsed(connection, sent[0].headers, sent[0].content)


def outbound_message(connection: Connection, sobject: str, record: dict[str, Any]) -> OutboundChange:
    body = OUTBOUND_MESSAGE.format(sobject=sobject, record_id=record["Id"]).encode()
    return parsed(connection, {"content-type": "text/xml; charset=utf-8"}, body)


@pytest.mark.parametrize("arrives_by", ["change event", "outbound message"])
@pytest.mark.parametrize("sobject", ["Account", "Contact"])
async def test_a_pulled_record_and_the_same_record_by_webhook_share_one_link(
    world: World, sobject: str, arrives_by: str
) -> None:
    case = replace(SALESFORCE, entity_type=sobject)
    connection = await world.connect(case)
    assert (await world.pull(connection)).status == "succeeded"
    record = next(case.api(world.sandbox).datasets[sobject].after(None)).body

    if arrives_by == "change event":
        change = await change_event(world, connection, record)
    else:
        change = outbound_message(connection, sobject, record)

    assert (change.entity_type, change.external_id) == (sobject, record["Id"])
    link = await world.store.read("external-ids", link_id(connection.id, change.entity_type, change.external_id), "t1")
    assert (link["entityType"], link["externalId"]) == (sobject, record["Id"])
    assert link["shardId"] == (await world.shard_of(connection, record["Id"]))["id"]
