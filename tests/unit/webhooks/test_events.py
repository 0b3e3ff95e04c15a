"""castiel.webhooks.events: real-shaped provider payloads → changes, handshakes and delivery ids; bad input → a reason.

The samples in ``payloads/<provider>/`` follow each provider's documented payloads (GitHub webhook events, Slack
Events API, Notion webhook events, Salesforce Change Data Capture and Outbound Messages, Pub/Sub push envelopes,
Standard Webhooks). A case names one as ``"<provider>/<file>"``; ``request`` adds the headers that provider sends.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from castiel.errors import InvalidMessage
from castiel.models import ChangeOrigin, Operation, OutboundChange, Provider, WebhookRegistration
from castiel.webhooks.events import ParsedDelivery, parse_delivery

PAYLOADS = Path(__file__).parent / "payloads"
RECEIVED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
GH_ID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
WHID = {"webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"}
GITHUB_EVENTS = {
    "issues_opened.json": "issues",
    "issues_edited.json": "issues",
    "issues_labeled.json": "issues",
    "issues_closed.json": "issues",
    "issues_deleted.json": "issues",
    "issue_comment_created.json": "issue_comment",
    "issue_comment_edited.json": "issue_comment",
    "issue_comment_deleted.json": "issue_comment",
    "pull_request_opened.json": "pull_request",
    "pull_request_closed.json": "pull_request",
    "ping.json": "ping",
    "star_created.json": "star",
}

Request = tuple[Provider, bytes, dict[str, str]]


def registration(provider: Provider) -> WebhookRegistration:
    return WebhookRegistration(
        id=f"reg-{provider.value}",
        tenant_id="tenant-1",
        provider=provider,
        connection_id=f"conn-{provider.value}",
        integration_id=f"int-{provider.value}",
    )


def github(event: str) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": GH_ID, "Content-Type": "application/json"}


def request(case: str) -> Request:
    """The sample ``"<provider>/<file>"`` with the headers its provider sends (signature headers aside)."""
    provider_name, _, name = case.partition("/")
    provider = Provider(provider_name)
    body = (PAYLOADS / provider_name / name).read_bytes()
    if provider is Provider.GITHUB:
        return provider, body, github(GITHUB_EVENTS[name])
    if provider is Provider.STANDARD:
        return provider, body, dict(WHID)
    return provider, body, {"Content-Type": "text/xml; charset=utf-8"} if name.endswith(".xml") else {}


def parse(provider: Provider, body: bytes, headers: Mapping[str, str]) -> ParsedDelivery:
    return parse_delivery(registration(provider), headers, body, correlation_id="corr-1", received_at=RECEIVED_AT)


def parse_case(case: str) -> ParsedDelivery:
    return parse(*request(case))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# ---------------------------------------------------------------- samples → changes


@dataclass(frozen=True)
class Expected:
    operations: str
    """One letter per change, in order: C(reate), U(pdate), D(elete)."""
    entity_type: str | None
    external_ids: tuple[str, ...]
    delivery_id: str | None
    event_type: str | None = None
    timestamp: datetime | None = None


ISSUE, COMMENT, PULL, TS = "2296011723", "2111864305", "1869874151", "1715680212.004519"
PAGE, PAGE2 = "153104cd-477e-809d-8dc4-ff2d96ae3090", "153104cd-477e-8001-935c-c4b11828dfbd"
DATABASE, CHAT = "153104cd-477e-80eb-ae76-e1c2a32c7b35", "spaces/AAAAqbGq3pE/messages/Yh7nNfCL4xk.Yh7nNfCL4xk"
CONTACT, CONTACT2, LEAD_TX = "0035e00000QxLbAAAV", "0035e00000QxLbBAAV", "00078a8b-2f1d-44c5-8a9c-c1b2d3e4f5a6"

SAMPLES = [
    # GitHub: issues opened → create, deleted → delete (received time: GitHub sends none), any other action → update.
    ("github/issues_opened.json", Expected("C", "issue", (ISSUE,), GH_ID, "issues.opened", at("2024-05-14T08:30:12Z"))),
    ("github/issues_edited.json", Expected("U", "issue", (ISSUE,), GH_ID, "issues.edited", at("2024-05-14T09:02:40Z"))),
    ("github/issues_labeled.json", Expected("U", "issue", (ISSUE,), GH_ID, "issues.labeled")),
    ("github/issues_closed.json", Expected("U", "issue", (ISSUE,), GH_ID, "issues.closed", at("2024-05-15T16:45:09Z"))),
    ("github/issues_deleted.json", Expected("D", "issue", (ISSUE,), GH_ID, "issues.deleted", RECEIVED_AT)),
    ("github/issue_comment_created.json", Expected("C", "comment", (COMMENT,), GH_ID, "issue_comment.created")),
    ("github/issue_comment_edited.json", Expected("U", "comment", (COMMENT,), GH_ID, "issue_comment.edited")),
    ("github/issue_comment_deleted.json", Expected("D", "comment", (COMMENT,), GH_ID, "issue_comment.deleted")),
    ("github/pull_request_opened.json", Expected("C", "pull_request", (PULL,), GH_ID, "pull_request.opened")),
    ("github/pull_request_closed.json", Expected("U", "pull_request", (PULL,), GH_ID, "pull_request.closed")),
    # Slack: the external id is the message's ts; the time is the event's own ts (the post, edit or deletion).
    ("slack/message.json", Expected("C", "message", (TS,), "Ev073G9K7Q2H", "message", epoch(1715680212.004519))),
    ("slack/message_thread_reply.json", Expected("C", "message", ("1715680300.000200",), "Ev073G9K9A11")),
    ("slack/bot_message.json", Expected("C", "message", ("1715680400.000300",), "Ev073G9KB001", "message.bot_message")),
    ("slack/message_changed.json", Expected("U", "message", (TS,), "Ev073GA1C2D3", None, epoch(1715680290.0001))),
    ("slack/message_deleted.json", Expected("D", "message", (TS,), "Ev073GA2E4F5", "message.message_deleted")),
    # Notion: ids only; created/undeleted → create, deleted → delete, anything else → update.
    (
        "notion/page_created.json",
        Expected("C", "page", (PAGE,), "367cba44-b6f3-4c92-81e7-6a2e9659efd4", "page.created"),
    ),
    ("notion/page_properties_updated.json", Expected("U", "page", (PAGE,), "1782edd6-a853-4d4a-b02c-9c8c16f28e53")),
    ("notion/page_content_updated.json", Expected("U", "page", (PAGE,), "56c3e00c-4f0c-4566-9676-4b058a50a03d")),
    ("notion/page_deleted.json", Expected("D", "page", (PAGE2,), "ea6b8136-1db6-4f2e-b157-84a532437f62")),
    ("notion/page_undeleted.json", Expected("C", "page", (PAGE2,), "ec37232c-a17b-4f02-bb7c-8d8e1f5f2250")),
    ("notion/database_created.json", Expected("C", "database", (DATABASE,), "d0bd8927-0826-4db0-9e26-83d57253f1ff")),
    (
        "notion/database_schema_updated.json",
        Expected("U", "database", (DATABASE,), "5496f509-6988-4bab-b6a9-bdce0b720ca0"),
    ),
    ("notion/database_deleted.json", Expected("D", "database", (DATABASE,), "c00e2ea7-032a-4e20-ae05-d69028a09ae9")),
    ("notion/comment_created.json", Expected("C", "comment", ("153104cd-477e-80ca-8f75-001d9e2b6839",), None)),
    # Salesforce CDC: one change per record id, entity type the sObject API name as Salesforce spells it (as pulled
    # records name it); UNDELETE restores (create); a gap event names records without fields.
    (
        "salesforce/cdc_contact_create.json",
        Expected("C", "Contact", (CONTACT,), None, "Contact.CREATE", epoch(1715680212)),
    ),
    ("salesforce/cdc_account_update.json", Expected("U", "Account", ("0015e00000AbCdEAAZ",), None, "Account.UPDATE")),
    (
        "salesforce/cdc_batch_pubsub.json",
        Expected(
            "UUD", None, ("00Q5e000006mYkWEAU", "00Q5e000006mYkXEAU", "0065e00000Bq7ZcAAJ"), f"{LEAD_TX}:1,{LEAD_TX}:2"
        ),
    ),
    (
        "salesforce/cdc_undelete.json",
        Expected("C", "Employee__c", ("a015e00000Zx9TqAAJ",), None, "Employee__c.UNDELETE"),
    ),
    ("salesforce/cdc_gap_update.json", Expected("UU", "Contact", (CONTACT, CONTACT2), None, "Contact.GAP_UPDATE")),
    # Salesforce Outbound Messages: every notification an update, delivery id the notification Id(s).
    ("salesforce/outbound_contact.xml", Expected("U", "Contact", (CONTACT,), "04l5e00000HQ8PnAAL", "outbound_message")),
    (
        "salesforce/outbound_batch.xml",
        Expected("UU", "Contact", (CONTACT2, CONTACT), "04l5e00000HQ8PoAAL,04l5e00000HQ8PpAAL"),
    ),
    # Google Pub/Sub: Workspace Events, a relayed Drive channel, Gmail watch, explicit attributes, anything else.
    ("google/workspace_chat_message_created.json", Expected("C", "message", (CHAT,), "11227736432391423")),
    ("google/workspace_chat_message_deleted.json", Expected("D", "message", (CHAT,), "11227736432391499")),
    ("google/drive_channel_update.json", Expected("U", "file", ("ret08u3rv24htgh289g",), "4511960123117845")),
    ("google/gmail_watch.json", Expected("U", "mailbox", ("ops@acme.example",), "2070443601311540", "gmail.history")),
    ("google/explicit_attributes.json", Expected("D", "contact", ("people/c7712029921",), "8844100022003311")),
    ("google/plain_text.json", Expected("C", "event", ("8844100022003399",), "8844100022003399", "pubsub.message")),
    # Standard Webhooks: "<entity>.<verb>", ISO or epoch timestamp, the webhook-id header.
    ("standard/contact_created.json", Expected("C", "contact", ("ct_01HXYZ9F3W2M7Q8R",), WHID["webhook-id"])),
    ("standard/contact_updated_epoch.json", Expected("U", "contact", ("4711",), None, None, epoch(1715691600))),
    ("standard/contact_deleted.json", Expected("D", "contact", ("ct_01HXYZ9F3W2M7Q8R",), None, "contact.deleted")),
]


@pytest.mark.parametrize(("case", "expected"), SAMPLES, ids=[case for case, _ in SAMPLES])
def test_sample_payloads_become_the_expected_changes(case: str, expected: Expected) -> None:
    provider = request(case)[0]

    parsed = parse_case(case)

    assert parsed.handshake is None
    assert "".join(change.operation.value[0].upper() for change in parsed.changes) == expected.operations
    assert tuple(change.external_id for change in parsed.changes) == expected.external_ids
    if expected.delivery_id is not None:
        assert parsed.delivery_id == expected.delivery_id
    reg = registration(provider)
    for change in parsed.changes:
        assert (change.tenant_id, change.integration_id, change.connection_id) == (
            reg.tenant_id,
            reg.integration_id,
            reg.connection_id,
        )
        assert (change.correlation_id, change.origin) == ("corr-1", ChangeOrigin.WEBHOOK)
        assert change.entity_id.startswith(f"{provider.value}:{change.entity_type}:")
        assert expected.entity_type in (None, change.entity_type)
        assert OutboundChange.from_json_bytes(change.to_json_bytes()) == change
    first = parsed.changes[0]
    assert expected.event_type in (None, first.event_type)
    assert expected.timestamp in (None, first.timestamp)


@pytest.mark.parametrize(
    ("case", "event_type", "timestamp"),
    [
        ("notion/page_created.json", "page.created", at("2024-12-05T23:55:34.285Z")),
        ("salesforce/outbound_contact.xml", "outbound_message", at("2024-05-14T09:50:12Z")),
        (
            "google/workspace_chat_message_created.json",
            "google.workspace.chat.message.v1.created",
            at("2024-05-14T12:00:00.879Z"),
        ),
        ("google/drive_channel_update.json", "channel.update", at("2024-05-14T12:30:00.456Z")),
        ("google/explicit_attributes.json", "contacts.deleted", at("2024-05-14T12:39:58Z")),
        ("google/gmail_watch.json", "gmail.history", at("2024-05-14T12:20:02.123Z")),
        ("standard/contact_created.json", "contact.created", at("2024-05-14T13:00:00.123456Z")),
        ("slack/message_changed.json", "message.message_changed", epoch(1715680290.0001)),
    ],
)
def test_the_time_is_the_event_s_own_else_the_publish_time(case: str, event_type: str, timestamp: datetime) -> None:
    change = parse_case(case).changes[0]

    assert (change.event_type, change.timestamp) == (event_type, timestamp)


CHANGE_FIELDS = [
    ("github/issues_opened.json", 0, {
        "number": 42, "title": "Contacts from Salesforce lose their phone extension", "state": "open",
        "labels": ["bug"], "assignees": [], "milestone": None, "author": "octo-dev",
        "repository": "acme-corp/castiel-demo",
    }),
    ("github/issues_labeled.json", 0, {"labels": ["bug", "sync"], "assignees": ["octo-dev"]}),
    ("github/issues_closed.json", 0, {"state": "closed", "state_reason": "completed", "milestone": "v0.3"}),
    ("github/issue_comment_created.json", 0, {
        "issue_number": 42, "author": "release-bot",
        "body": "Reproduced on 0.2.1; the mapper drops everything after `x`.",
    }),
    ("github/pull_request_closed.json", 0, {
        "number": 43, "state": "closed", "merged": True, "head": "fix/phone-ext", "base": "main", "labels": ["sync"],
    }),
    ("slack/message.json", 0, {
        "text": "Deploy of castiel 0.3 is done :tada:", "user": "U024BE7LH", "channel": "C2CJB7KQ0",
    }),
    ("slack/message_changed.json", 0, {"text": "Deploy of castiel 0.3.1 is done :tada:", "channel": "C2CJB7KQ0"}),
    ("slack/message_thread_reply.json", 0, {"thread_ts": TS}),
    ("notion/page_properties_updated.json", 0, {
        "workspace_id": "13950b26-c203-4f3b-b97d-93ec06319565",
        "parent": {"id": "15b104cd-477e-80c2-84a0-c32cefba5cff", "type": "database"},
        "updated_properties": ["XGe%40", "bDf%5B", "title"],
    }),
    ("salesforce/cdc_contact_create.json", 0, {
        "Email": "ada@example.com", "Name": {"Salutation": "Ms.", "FirstName": "Ada", "LastName": "Lovelace"},
    }),
    ("salesforce/cdc_account_update.json", 0, {"Phone": "+44 20 7946 0000", "Website": None}),
    ("salesforce/outbound_contact.xml", 0, {"Email": "ada@example.com", "FirstName": "Ada", "Title": "CTO"}),
    ("salesforce/outbound_batch.xml", 0, {"FirstName": "Grace", "Title": None}),
    ("salesforce/outbound_batch.xml", 1, {"Email": "ada@example.org", "Title": "CTO & founder"}),
    ("google/workspace_chat_message_created.json", 0, {"message": {
        "name": CHAT, "sender": {"name": "users/114022495153014004089", "type": "HUMAN"},
        "createTime": "2024-05-14T12:00:00.879Z", "text": "Standup moved to 10:30",
        "thread": {"name": "spaces/AAAAqbGq3pE/threads/Yh7nNfCL4xk"}, "space": {"name": "spaces/AAAAqbGq3pE"},
    }}),
    ("google/gmail_watch.json", 0, {"emailAddress": "ops@acme.example", "historyId": 9876543210}),
    ("google/drive_channel_update.json", 0, {
        "resource_uri": "https://www.googleapis.com/drive/v3/files/1aBcDeFgHiJkLmNoPqRsTuVwXyZ?alt=json",
        "channel_id": "castiel-drive-4ba78bf0", "message_number": "7", "changed": "content,properties",
    }),
    ("google/plain_text.json", 0, {"data": "nightly export finished"}),
    ("standard/contact_created.json", 0, {"email": "lin@example.com", "name": "Lin Park", "company": "Acme"}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "index", "fields"), CHANGE_FIELDS, ids=[f"{c}-{i}" for c, i, _ in CHANGE_FIELDS])
def test_changes_carry_the_fields_the_payload_sends(case: str, index: int, fields: dict[str, Any]) -> None:
    change = parse_case(case).changes[index]

    assert {key: change.changes.get(key, "<absent>") for key in fields} == fields


@pytest.mark.parametrize(
    ("case", "absent"),
    [
        ("notion/page_created.json", {"properties", "authors", "title", "accessible_by"}),
        ("salesforce/cdc_account_update.json", {"ChangeEventHeader"}),
        ("salesforce/outbound_contact.xml", {"Id"}),
        ("standard/contact_created.json", {"id"}),
    ],
)
def test_changes_leave_out_headers_ids_and_content_the_event_does_not_carry(case: str, absent: set[str]) -> None:
    change = parse_case(case).changes[0]

    assert change.changes
    assert not absent & set(change.changes)


def test_a_gap_event_names_its_records_without_fields_so_the_worker_fetches_them() -> None:
    parsed = parse_case("salesforce/cdc_gap_update.json")

    assert [(change.operation, change.changes) for change in parsed.changes] == [(Operation.UPDATE, {})] * 2


def test_a_slack_ts_is_keyed_by_its_channel_because_it_is_unique_only_there() -> None:
    change = parse_case("slack/message_deleted.json").changes[0]

    assert change.entity_id == f"slack:message:C2CJB7KQ0:{TS}"
    assert change.changes == {"channel": "C2CJB7KQ0"}


def test_a_github_form_encoded_delivery_parses_like_its_json() -> None:
    provider, body, headers = request("github/issues_opened.json")
    form = urlencode({"payload": body.decode()}).encode()

    as_form = parse(provider, form, {**headers, "Content-Type": "application/x-www-form-urlencoded"})

    assert as_form == parse(provider, body, headers)


@pytest.mark.parametrize(
    "spelling",
    [
        {"X-GitHub-Event": "issues", "X-GitHub-Delivery": GH_ID},
        {"x-github-event": "issues", "x-github-delivery": GH_ID},
        {"X-GITHUB-EVENT": "issues", "X-Github-Delivery": GH_ID},
    ],
)
def test_header_names_are_case_insensitive(spelling: dict[str, str]) -> None:
    provider, body, _ = request("github/issues_opened.json")

    parsed = parse(provider, body, spelling)

    assert parsed.delivery_id == GH_ID
    assert [change.operation for change in parsed.changes] == [Operation.CREATE]


@pytest.mark.parametrize(
    ("case", "headers", "delivery_id"),
    [
        ("salesforce/cdc_account_update.json", {"Webhook-Id": "msg_apex_1"}, "msg_apex_1"),
        ("salesforce/cdc_account_update.json", {}, "000c3f2a-55d4-1e7a-9b1c-7f3e2d1c0b9a:2"),
        ("salesforce/cdc_contact_create.json", {}, "0002e4e5-8c9b-3f9d-7a1b-2c3d4e5f6a7b:1"),
        ("standard/contact_deleted.json", {"webhook-id": "msg_x"}, "msg_x"),
        ("standard/contact_deleted.json", {}, None),
    ],
)
def test_delivery_ids_come_from_the_signed_webhook_id_else_the_payload(
    case: str, headers: dict[str, str], delivery_id: str | None
) -> None:
    provider, body, _ = request(case)

    assert parse(provider, body, headers).delivery_id == delivery_id


def test_wildcard_record_ids_are_skipped() -> None:
    provider, body, headers = mutated(
        "salesforce/cdc_account_update.json", ("ChangeEventHeader", "recordIds"), ["001*", "0015e00000AbCdEAAZ"]
    )

    parsed = parse(provider, body, headers)

    assert [change.external_id for change in parsed.changes] == ["0015e00000AbCdEAAZ"]


# ---------------------------------------------------------------- handshakes


@pytest.mark.parametrize(
    ("case", "kind", "body", "content_type", "token", "delivery_id"),
    [
        ("slack/url_verification.json", "slack_url_verification",
         b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "text/plain", None, None),
        ("github/ping.json", "github_ping", b'{"ok":true}', "application/json", None, GH_ID),
        ("notion/verification.json", "notion_verification", b'{"ok":true}', "application/json",
         "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl", None),
    ],
)  # fmt: skip
def test_handshakes_are_answered_and_enqueue_nothing(
    case: str, kind: str, body: bytes, content_type: str, token: str | None, delivery_id: str | None
) -> None:
    parsed = parse_case(case)

    assert (parsed.changes, parsed.delivery_id) == ([], delivery_id)
    assert parsed.handshake is not None
    assert (parsed.handshake.kind, parsed.handshake.status_code) == (kind, 200)
    assert (parsed.handshake.body, parsed.handshake.content_type) == (body, content_type)
    assert parsed.handshake.verification_token == token


def test_a_handshake_of_another_provider_is_not_one() -> None:
    _, body, _ = request("slack/url_verification.json")

    with pytest.raises(InvalidMessage, match="action is missing"):
        parse(Provider.GITHUB, body, github("issues"))


# ---------------------------------------------------------------- valid events the engine does not sync


@pytest.mark.parametrize(
    ("case", "delivery_id"),
    [
        ("github/star_created.json", GH_ID),
        ("slack/channel_join.json", "Ev073GA3G6H7"),
        ("slack/reaction_added.json", "Ev073GA4J8K9"),
        ("slack/app_rate_limited.json", None),
        ("notion/file_upload_completed.json", "7a1e54c0-d0ce-4f3e-9bd0-0e9d5f1c3a11"),
        ("salesforce/cdc_gap_overflow.json", "0004bb22-cc33-dd44-ee55-ff6677889900:1"),
        ("google/workspace_subscription_expiration_reminder.json", "11227736432391512"),
        ("google/calendar_channel_sync.json", "4511960123117801"),
        ("standard/invoice_paid.json", WHID["webhook-id"]),
    ],
)
def test_valid_events_the_engine_does_not_sync_carry_no_changes(case: str, delivery_id: str | None) -> None:
    assert parse_case(case) == ParsedDelivery(changes=[], delivery_id=delivery_id, handshake=None)


def test_a_github_event_we_do_not_sync_is_not_read_beyond_being_json() -> None:
    provider, body, _ = request("github/issues_opened.json")

    assert parse(provider, body, github("workflow_run")) == ParsedDelivery(delivery_id=GH_ID)


# ---------------------------------------------------------------- malformed input


def mutated(case: str, path: tuple[str | int, ...], value: Any) -> Request:
    """The sample with the value at ``path`` replaced (``...`` deletes it)."""
    provider, body, headers = request(case)
    document = orjson.loads(body)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if value is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return provider, orjson.dumps(document), headers


def edited(case: str, old: bytes, new: bytes) -> Request:
    provider, body, headers = request(case)
    assert old in body
    return provider, body.replace(old, new), headers


def pubsub(attributes: dict[str, Any] | None = None, data: str | None = None, message_id: str | None = "1") -> Request:
    message: dict[str, Any] = {"attributes": attributes or {}}
    if data is not None:
        message["data"] = data
    if message_id is not None:
        message["messageId"] = message_id
    return Provider.GOOGLE, orjson.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}), {}


GH, SL, NO, SF, ST = Provider.GITHUB, Provider.SLACK, Provider.NOTION, Provider.SALESFORCE, Provider.STANDARD
FORM = {**github("issues"), "Content-Type": "application/x-www-form-urlencoded"}
ISSUE_JSON, SLACK_JSON, CDC_JSON = (
    "github/issues_opened.json",
    "slack/message.json",
    "salesforce/cdc_account_update.json",
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&xxe;'
    b"</soapenv:Body></soapenv:Envelope>"
)
NO_NOTIFICATION = (
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b'<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D5e000000ABCDEAZ'
    b"</OrganizationId></notifications></soapenv:Body></soapenv:Envelope>"
)
DEEP = orjson.dumps(
    {"type": "contact.created", "data": {"id": "x1", "tree": orjson.loads(b'{"a":' * 40 + b"1" + b"}" * 40)}}
)

MALFORMED: list[tuple[Request, str]] = [
    ((GH, b"not json", github("issues")), "body is not valid JSON"),
    ((GH, b"", github("issues")), "body is not valid JSON"),
    ((GH, b"[]", github("issues")), "body: expected a JSON object, got list"),
    ((GH, b"{}", {"X-GitHub-Delivery": GH_ID}), "X-GitHub-Event header is missing"),
    (mutated(ISSUE_JSON, ("issue",), ...), "issue is missing"),
    (mutated(ISSUE_JSON, ("issue", "id"), [1]), r"issue\.id: expected a non-empty string or integer id, got list"),
    (mutated(ISSUE_JSON, ("issue", "id"), True), r"issue\.id: expected .* got bool"),
    (mutated(ISSUE_JSON, ("issue", "updated_at"), "yesterday"), r"issue\.updated_at: not an ISO-8601 time"),
    (mutated(ISSUE_JSON, ("issue", "labels"), [{"id": 1}]), r"issue\.labels\[0\]\.name is missing"),
    (mutated("github/issue_comment_created.json", ("action",), "pinned"), "not created, edited or deleted"),
    ((GH, b"payload_missing=1", FORM), "form body has no payload field"),
    ((GH, b"payload=%FF", FORM), "payload is not valid JSON"),
    ((SL, b'{"token": "x"}', {}), "type is missing"),
    ((SL, b'{"type": "url_verification", "challenge": 5}', {}), "challenge: expected a string, got int"),
    (mutated(SLACK_JSON, ("event", "channel"), ...), r"event\.channel is missing"),
    (mutated(SLACK_JSON, ("event",), "message"), "event: expected a JSON object, got str"),
    (mutated("slack/message_changed.json", ("event", "message", "ts"), "yesterday"), "message ts: not an epoch time"),
    (mutated(SLACK_JSON, ("event", "ts"), "1e999"), r"event\.ts: not a finite epoch time"),
    ((NO, b'{"verification_token": ""}', {}), "verification_token is missing or empty"),
    (mutated("notion/page_created.json", ("entity",), ...), "entity is missing"),
    (mutated("notion/page_created.json", ("id",), ...), "id is missing"),
    (mutated("notion/page_created.json", ("timestamp",), "soon"), "timestamp: not an ISO-8601 time"),
    ((SF, b"42", {}), "expected a change event object or an array of them"),
    ((SF, b'[{"payload": {"Name": "x"}}]', {}), r"body\[0\]: no ChangeEventHeader"),
    (mutated(CDC_JSON, ("ChangeEventHeader", "changeType"), "SNAPSHOT"), "not a Change Data Capture change type"),
    (mutated(CDC_JSON, ("ChangeEventHeader", "recordIds"), []), "recordIds is missing or empty"),
    (mutated(CDC_JSON, ("ChangeEventHeader", "recordIds"), [1]), "expected an array of strings"),
    (mutated(CDC_JSON, ("ChangeEventHeader", "commitTimestamp"), 10**18), "epoch time out of range"),
    ((SF, BILLION_LAUGHS, {}), "DOCTYPE"),
    ((SF, EXTERNAL_ENTITY, {"Content-Type": "text/xml"}), "DOCTYPE"),
    ((SF, b"<notifications><Notification>", {}), "malformed XML"),
    ((SF, b"<html><body>hello</body></html>", {}), "not a SOAP envelope"),
    ((SF, NO_NOTIFICATION, {}), "carries no Notification"),
    (edited("salesforce/outbound_contact.xml", b' xsi:type="sf:Contact"', b""), "xsi:type naming its entity"),
    (edited("salesforce/outbound_contact.xml", b"<sf:Id>0035e00000QxLbAAAV</sf:Id>", b""), "sObject Id is missing"),
    ((Provider.GOOGLE, b'{"subscription": "s"}', {}), "message is missing"),
    (pubsub(message_id=None), r"message\.messageId is missing"),
    (pubsub(data="!!not base64!!"), "message.data is not valid base64"),
    (pubsub(data="abcde"), "message.data is not valid base64"),
    (pubsub({"count": 3}), "every attribute value must be a string"),
    (pubsub({"entityType": "contact", "entityId": "c1", "operation": "merge"}), "operation 'merge' is not"),
    (pubsub({"ce-type": "google.workspace.chat.message.v1.created"}), "ce-subject do not name a resource and a verb"),
    (pubsub({"ce-type": "created", "ce-subject": "//x/y"}), "do not name a resource and a verb"),
    (pubsub({"X-Goog-Resource-State": "update"}), "X-Goog-Resource-ID is missing"),
    (pubsub({"ce-type": "a.b.v1.created", "ce-subject": "s", "ce-time": "noon"}), "attribute ce-time: not an ISO-8601"),
    ((ST, b'{"type": "contact.created"}', WHID), "data is missing"),
    ((ST, b'{"type": "contact.created", "data": []}', WHID), "data: expected a JSON object, got list"),
    ((ST, b'{"type": "contact.created", "data": {"name": "x"}}', WHID), r"data\.id: expected"),
    (
        (ST, b'{"type": "contact.created", "timestamp": true, "data": {"id": "1"}}', WHID),
        "expected an epoch time, got bool",
    ),
    ((ST, b'{"type": 7, "data": {"id": "1"}}', WHID), "type: expected a string"),
    ((ST, DEEP, WHID), "contact fields nest deeper than 32 levels"),
]


@pytest.mark.parametrize(
    ("request_", "reason"), MALFORMED, ids=[f"{r[0].value}-{reason[:40]}" for r, reason in MALFORMED]
)
def test_malformed_input_is_refused_with_a_reason(request_: Request, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        parse(*request_)


# ---------------------------------------------------------------- fuzzing: only InvalidMessage ever escapes


def assert_only_invalid_message(provider: Provider, body: bytes, headers: Mapping[str, str]) -> None:
    reason: str | None = None
    try:
        parsed = parse(provider, body, headers)
    except InvalidMessage as exc:
        parsed, reason = ParsedDelivery(), str(exc)
    assert reason != "", "a refusal names its reason"
    for change in parsed.changes:
        # What the receiver does next must not fail either: the change goes on the queue as JSON.
        assert OutboundChange.from_json_bytes(change.to_json_bytes()).external_id == change.external_id


JSON_CASES = sorted(f"{path.parent.name}/{path.name}" for path in PAYLOADS.glob("*/*.json"))
HEADER_NAMES = {
    GH: ["X-GitHub-Event", "X-GitHub-Delivery", "Content-Type"],
    SF: ["Content-Type", "webhook-id"],
    ST: ["webhook-id"],
}
WRONG_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], {}, [1], {"a": 1}, ...]
"""What every field of every sample is replaced by in turn (``...`` deletes it)."""

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "opened", "message_changed", "UPDATE", "GAP_OVERFLOW", "page.created", "1715680212.1"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def node_paths(document: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The path of every value inside ``document``, depth first."""
    children: Any = ()
    if isinstance(document, dict):
        children = document.items()
    elif isinstance(document, list):
        children = enumerate(document)
    for key, child in children:
        yield (*prefix, key)
        yield from node_paths(child, (*prefix, key))


@pytest.mark.parametrize("case", JSON_CASES)
def test_every_field_of_a_real_payload_missing_or_of_the_wrong_type_only_raises_invalid_message(case: str) -> None:
    # Exhaustive where random mutation is thin: a parser that trusts one field's type fails here deterministically.
    paths = list(node_paths(orjson.loads(request(case)[1])))
    assert paths

    for path in paths:
        for value in WRONG_VALUES:
            assert_only_invalid_message(*mutated(case, path, value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    provider=st.sampled_from(list(Provider)),
    body=st.binary(max_size=256) | json_values.map(orjson.dumps),
    header_values=st.lists(st.text(max_size=24), min_size=3, max_size=3),
)
def test_fuzzed_bodies_and_headers_only_ever_raise_invalid_message(
    provider: Provider, body: bytes, header_values: list[str]
) -> None:
    headers = dict(zip(HEADER_NAMES.get(provider, []), header_values, strict=False))

    assert_only_invalid_message(provider, body, headers)


def mutate(document: Any, path_choices: list[int], replacement: Any, delete: bool) -> Any:
    """Walk into ``document`` following ``path_choices`` and replace (or delete) what is found there."""
    parent: Any = None
    key: Any = None
    node = document
    for choice in path_choices:
        if isinstance(node, dict) and node:
            parent, key = node, sorted(node)[choice % len(node)]
        elif isinstance(node, list) and node:
            parent, key = node, choice % len(node)
        else:
            break
        node = parent[key]
    if parent is None:
        return replacement
    if delete and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = replacement
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(JSON_CASES),
    mutations=st.lists(
        st.tuples(st.lists(st.integers(min_value=0, max_value=50), max_size=6), json_values, st.booleans()),
        min_size=1,
        max_size=3,
    ),
)
def test_mutated_real_payloads_only_ever_raise_invalid_message(
    case: str, mutations: list[tuple[list[int], Any, bool]]
) -> None:
    provider, body, headers = request(case)
    document = orjson.loads(body)
    for path_choices, replacement, delete in mutations:
        document = mutate(document, path_choices, replacement, delete)

    assert_only_invalid_message(provider, orjson.dumps(document), headers)


@settings(max_examples=200, deadline=None)
@given(
    case=st.sampled_from(["salesforce/outbound_contact.xml", "salesforce/outbound_batch.xml"]),
    cut=st.integers(min_value=0, max_value=3000),
    length=st.integers(min_value=0, max_value=40),
    insert=st.binary(max_size=12) | st.sampled_from([b"<", b"&lt;", b"<!DOCTYPE x>", b"&amp;", b'xsi:nil="true"']),
)
def test_mutated_soap_messages_only_ever_raise_invalid_message(case: str, cut: int, length: int, insert: bytes) -> None:
    provider, body, headers = request(case)
    cut %= len(body)

    assert_only_invalid_message(provider, body[:cut] + insert + body[cut + length :], headers)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64), attributes=st.dictionaries(st.text(max_size=24), st.text(max_size=24), max_size=4))
def test_fuzzed_pubsub_messages_only_ever_raise_invalid_message(data: bytes, attributes: dict[str, str]) -> None:
    assert_only_invalid_message(*pubsub(attributes, base64.b64encode(data).decode()))
