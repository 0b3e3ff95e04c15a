"""Webhooks on in the sandbox: every change of a record — a person's edit, a write pushed through the API — is sent to
the subscribed URL as its provider's signed event, which the receiver's own verifier and parser accept."""

from __future__ import annotations

import json

import httpx
import pytest

from castiel.clock import ManualClock, now_utc
from castiel.models import Operation, Provider, WebhookRegistration
from castiel.sandbox.app import build_app
from castiel.sandbox.state import Sandbox
from castiel.sandbox.subscriptions import Subscription, WebhookSubscriptions
from castiel.webhooks.events import parse_delivery
from castiel.webhooks.verifiers import build_verifier

SECRET = "sandbox-subscription-secret"
URL = "http://castiel.test/webhooks/wh/events"
NOW = 1_735_862_400.0


class Capture:
    """An ``httpx.MockTransport`` handler keeping what was sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(202, json={"accepted": 1})


async def received(provider: Provider, request: httpx.Request) -> tuple[str, Operation, str]:
    """Verify and parse a captured event as the receiver would: (entity type, operation, external id)."""
    registration = WebhookRegistration(id="wh", tenant_id="t", provider=provider, connection_id="c",
                                       integration_id=provider.value)  # fmt: skip
    headers = {name.lower(): value for name, value in request.headers.items()}
    await build_verifier(provider, [SECRET], {}).verify(headers, request.content, NOW)
    [change] = parse_delivery(registration, headers, request.content, correlation_id="c",
                              received_at=now_utc(ManualClock(NOW))).changes  # fmt: skip
    return change.entity_type, change.operation, str(change.external_id)


@pytest.fixture
async def capture() -> Capture:
    return Capture()


@pytest.mark.parametrize("provider", [Provider.GITHUB, Provider.NOTION, Provider.SLACK])
async def test_edits_creates_and_deletes_are_sent_signed_to_the_subscribers(
    provider: Provider, capture: Capture
) -> None:
    sandbox = Sandbox(records=3, clock=ManualClock(NOW))
    async with httpx.AsyncClient(transport=httpx.MockTransport(capture)) as http:
        subscriptions = WebhookSubscriptions(sandbox, http, clock=ManualClock(NOW))
        subscriptions.subscribe(Subscription(provider.value, URL, SECRET))
        sandbox.edit("salesforce", count=1)  # no subscriber: nothing sent
        [edited] = sandbox.edit(provider.value, count=1)
        [created] = sandbox.create(provider.value)
        [deleted] = sandbox.delete(provider.value, count=1)
        await subscriptions.drain()

    key = "ts" if provider is Provider.SLACK else "id"
    events = [await received(provider, request) for request in capture.requests]
    assert sorted(events) == sorted(
        [
            (events[0][0], Operation.UPDATE, str(edited[key])),
            (events[0][0], Operation.CREATE, str(created[key])),
            (events[0][0], Operation.DELETE, deleted),
        ]
    )
    assert {str(request.url) for request in capture.requests} == {URL}
    assert subscriptions.sent == 3


async def test_a_write_through_the_api_is_reported_too(capture: Capture) -> None:
    sandbox = Sandbox(records=3, clock=ManualClock(NOW))
    async with httpx.AsyncClient(transport=httpx.MockTransport(capture)) as hooks:
        subscriptions = WebhookSubscriptions(sandbox, hooks, clock=ManualClock(NOW))
        subscriptions.subscribe(Subscription("github", URL, SECRET))
        api = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(sandbox)), base_url="http://sandbox")
        async with api:
            answer = await api.patch("/github/repos/acme/widgets/issues/2", json={"title": "Pushed"},
                                     headers={"Authorization": "Bearer t"})  # fmt: skip
        await subscriptions.drain()

    assert answer.status_code == 200
    [request] = capture.requests
    assert await received(Provider.GITHUB, request) == ("issue", Operation.UPDATE, "1000000002")
    assert json.loads(request.content)["issue"]["title"] == "Pushed"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"provider": "github", "url": "ftp://x", "secret": "s"}, "url must be an http(s) URL"),
        ({"provider": "github", "url": URL}, "give the registration's secret"),
        ({"provider": "myspace", "url": URL, "secret": "s"}, "no sandbox provider 'myspace'"),
    ],
)
async def test_the_subscription_control_refuses_bad_input(body: dict[str, str], reason: str) -> None:
    transport = httpx.ASGITransport(app=build_app(Sandbox(records=1)))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        answer = await http.post("/_sandbox/subscriptions", json=body)
        listed = (await http.get("/_sandbox/subscriptions")).json()
    assert answer.status_code in (400, 404)
    assert reason in answer.json()["error"]
    assert listed == {"subscriptions": [], "sent": 0, "failed": 0}
