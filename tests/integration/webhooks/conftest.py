"""The webhook receiver assembled from real parts, and deliveries signed exactly as each provider signs them.

A ``Harness`` is one ``WebhookReceiver`` on a SQLite store and queue in ``tmp_path``, a local secrets file, the
session's Redis, and ``GoogleSigningKeys`` served the JWKS of a key generated here (``httpx.MockTransport``); every
part reads one ``ManualClock``. A registration *kind* is one way a provider delivers: the six providers, with
Salesforce split into its signed Apex callouts (``salesforce``) and SOAP Outbound Messages (``salesforce-soap``).
Registration ``reg-<kind>`` belongs to tenant ``tenant-1`` and connection ``conn-<kind>``.
"""

from __future__ import annotations

import base64
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from castiel.backends.local_secrets import LocalSecretStore
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock
from castiel.credentials.webhook_secrets import WebhookSecrets
from castiel.models import (
    OutboundChange,
    Provider,
    VerificationState,
    WebhookAudit,
    WebhookHealth,
    WebhookRegistration,
)
from castiel.ports import DocumentStore, Filter, MessageQueue, Query, SecretStore
from castiel.webhooks import schemes
from castiel.webhooks.google_oidc import GOOGLE_CERTS_URL, GoogleSigningKeys
from castiel.webhooks.health import registration_health
from castiel.webhooks.ledger import DeliveryLedger
from castiel.webhooks.receiver import WebhookReceiver, WebhookRequest, WebhookResponse
from castiel.webhooks.registrations import WebhookRegistrations
from castiel.webhooks.verifier_cache import VerifierCache

QUEUE = "sync-outbound"
PAYLOADS = Path(__file__).parents[2] / "unit" / "webhooks" / "payloads"
NOW = 1_700_000_000.0
TENANT = "tenant-1"
DELIVERY_ID = "5f1c7e2a-0b6d-11ef-9b1a-2f5d8c3e4a10"
"""The delivery id signed into GitHub's and Standard Webhooks' headers."""

GOOGLE_KID = "castiel-test-key-1"
GOOGLE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
AUDIENCE = "https://castiel.example.com/webhooks/reg-google/events"
SERVICE_ACCOUNT = "pubsub-push@castiel-demo.iam.gserviceaccount.com"
ORGANIZATION_ID = "00D5e000000ABCDEAZ"
"""The org that sent the sample Outbound Messages (18-character form)."""

KINDS = ("github", "slack", "notion", "standard", "salesforce", "salesforce-soap", "google")

PROVIDERS: Mapping[str, Provider] = {
    "github": Provider.GITHUB,
    "slack": Provider.SLACK,
    "notion": Provider.NOTION,
    "standard": Provider.STANDARD,
    "salesforce": Provider.SALESFORCE,
    "salesforce-soap": Provider.SALESFORCE,
    "google": Provider.GOOGLE,
}

SCHEMES: Mapping[str, schemes.HmacScheme] = {
    "github": schemes.GITHUB,
    "slack": schemes.SLACK,
    "notion": schemes.NOTION,
    "standard": schemes.STANDARD,
    "salesforce": schemes.STANDARD,
}
"""The kinds that sign with an HMAC, and how."""

SECRETS: Mapping[str, str] = {
    "github": "gh-hook-secret-Qm3v9Xw2rT",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "notion": "secret_confirmedNotionToken9f8e7d6c5b4a3Z",
    "standard": "whsec_" + base64.b64encode(b"standard-webhooks-key-0123456789").decode(),
    "salesforce": "whsec_" + base64.b64encode(b"salesforce-apex-callout-key-4567").decode(),
}
"""The confirmed secret of each HMAC kind."""


@dataclass(frozen=True, slots=True)
class Sample:
    """A real-shaped delivery body from ``tests/unit/webhooks/payloads`` and the non-auth headers sent with it."""

    file: str
    github_event: str | None = None

    @property
    def body(self) -> bytes:
        return (PAYLOADS / self.file).read_bytes()

    def headers(self) -> dict[str, str]:
        if self.file.endswith(".xml"):
            return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        headers = {"Content-Type": "application/json"}
        if self.github_event is not None:
            headers["X-GitHub-Event"] = self.github_event
        return headers


SAMPLES: Mapping[str, Sample] = {
    "github": Sample("github/issues_opened.json", github_event="issues"),
    "slack": Sample("slack/message.json"),
    "notion": Sample("notion/page_created.json"),
    "standard": Sample("standard/contact_created.json"),
    "salesforce": Sample("salesforce/cdc_batch_pubsub.json"),
    "salesforce-soap": Sample("salesforce/outbound_batch.xml"),
    "google": Sample("google/explicit_attributes.json"),
}
"""One real-shaped event of each kind."""


def registration(kind: str, *, status: str = "active", **settings: Any) -> WebhookRegistration:
    """Registration ``reg-<kind>``; SOAP and Google ones carry their default settings, overridden by ``settings``."""
    defaults: dict[str, Any] = {
        "salesforce-soap": {"organizationId": ORGANIZATION_ID},
        "google": {"audience": AUDIENCE, "serviceAccount": SERVICE_ACCOUNT},
    }.get(kind, {})
    return WebhookRegistration(
        id=f"reg-{kind}",
        tenant_id=TENANT,
        provider=PROVIDERS[kind],
        connection_id=f"conn-{kind}",
        integration_id=PROVIDERS[kind].value,
        secret_name=f"webhook-{kind}" if kind in SECRETS else None,
        status=status,
        settings={**defaults, **settings},
    )


def google_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The public half of ``key`` as Google publishes it in its JWKS."""
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid, "alg": "RS256", "use": "sig"}


def google_token(now: float, *, key: rsa.RSAPrivateKey = GOOGLE_KEY, kid: str = GOOGLE_KID, **claims: Any) -> str:
    """A Pub/Sub push OIDC token issued at ``now`` for the registration's audience and service account."""
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "113774264463038321964",
        "sub": "113774264463038321964",
        "email": SERVICE_ACCOUNT,
        "email_verified": True,
        "iat": int(now),
        "exp": int(now) + 3600,
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def auth_headers(
    kind: str, body: bytes, *, now: float, secret: str | None = None, delivery_id: str = DELIVERY_ID, **claims: Any
) -> dict[str, str]:
    """The headers that authenticate ``body`` as ``kind`` sends it at ``now`` (``claims`` adjust a Google token)."""
    if kind == "google":
        return {"Authorization": f"Bearer {google_token(now, **claims)}"}
    if kind == "salesforce-soap":
        return {}
    return SCHEMES[kind].sign(body, secret or SECRETS[kind], now=now, delivery_id=delivery_id)


def serve_jwks(request: httpx.Request) -> httpx.Response:
    """Google's certs endpoint, publishing ``GOOGLE_KEY``."""
    assert str(request.url) == GOOGLE_CERTS_URL
    return httpx.Response(
        200, json={"keys": [google_jwk(GOOGLE_KEY, GOOGLE_KID)]}, headers={"Cache-Control": "public, max-age=3600"}
    )


def unreachable(request: httpx.Request) -> httpx.Response:
    """Google's certs endpoint when the network is down."""
    raise httpx.ConnectError("connection refused", request=request)


@dataclass
class Harness:
    """A receiver on real backends, with helpers to register, deliver and look at what it stored."""

    clock: ManualClock
    store: DocumentStore
    queue: MessageQueue
    secrets: SecretStore
    registrations: WebhookRegistrations
    verifiers: VerifierCache
    ledger: DeliveryLedger
    receiver: WebhookReceiver

    async def register(
        self, kind: str, *, status: str = "active", with_secret: bool = True, **settings: Any
    ) -> WebhookRegistration:
        """Add ``reg-<kind>``, with its confirmed secret in the secret store unless ``with_secret`` is False.

        A Notion registration with its secret has confirmed its verification token; one without is waiting for it.
        """
        new = registration(kind, status=status, **settings)
        if with_secret and new.secret_name is not None:
            await self.secrets.set_secret(new.secret_name, SECRETS[kind])
        if new.provider is Provider.NOTION:
            state = VerificationState.CONFIRMED if with_secret else VerificationState.OPEN
            new = new.model_copy(update={"verification": state})
        return await self.registrations.add(new)

    async def post(
        self, registration_id: str, body: bytes, headers: Mapping[str, str], *, source: str | None = None
    ) -> WebhookResponse:
        """One request from ``source``, its header names lower-cased as the HTTP trigger passes them."""
        lowered = {name.lower(): value for name, value in headers.items()}
        return await self.receiver.handle(WebhookRequest(registration_id, lowered, body, source_address=source))

    async def deliver(
        self,
        kind: str,
        body: bytes | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        signed_at: float | None = None,
        **auth: Any,
    ) -> WebhookResponse:
        """``kind``'s sample (or ``body``) signed now (or at ``signed_at``), sent to ``reg-<kind>``.

        ``headers`` are added last, so they can replace what the sample or the signature set.
        """
        sample = SAMPLES[kind]
        body = sample.body if body is None else body
        now = self.clock() if signed_at is None else signed_at
        sent = {**sample.headers(), **auth_headers(kind, body, now=now, **auth), **(headers or {})}
        return await self.post(f"reg-{kind}", body, sent)

    async def queued(self) -> list[OutboundChange]:
        """Every change on ``sync-outbound``, in the order sent."""
        return [OutboundChange.from_json_bytes(m.body) for m in await self.queue.peek(QUEUE, max_messages=1000)]

    async def audits(self, registration_id: str) -> list[WebhookAudit]:
        """The audit lines of a registration, oldest first, once the background writes have finished."""
        await self.receiver.drain()
        query = Query(
            # The ledger's fallback keeps idempotency documents ("seen") in the same container.
            filters=(Filter("outcome", "!=", "seen"),),
            partition_key=registration_id,
            order_by=(("receivedAt", "asc"),),
        )
        page = await self.store.query(WebhookAudit.container, query)
        return [WebhookAudit.model_validate(doc) for doc in page.items]

    async def health(self, registration_id: str) -> WebhookHealth:
        """The registration's health as the CLI reports it, once the background audit writes have finished."""
        await self.receiver.drain()
        return await registration_health(self.store, registration_id)


def assemble(
    *,
    store: DocumentStore,
    queue: MessageQueue,
    secrets: SecretStore,
    redis: aioredis.Redis,
    http: httpx.AsyncClient,
    clock: ManualClock,
) -> Harness:
    """Wire the receiver exactly as ``castiel.runtime`` does, on the given backends."""
    registrations = WebhookRegistrations(store, clock=clock)
    verifiers = VerifierCache(WebhookSecrets(store, secrets), GoogleSigningKeys(http, clock=clock), clock=clock)
    ledger = DeliveryLedger(redis, store, clock=clock)
    receiver = WebhookReceiver(registrations, verifiers, ledger, store, queue, secrets, queue_name=QUEUE, clock=clock)
    return Harness(clock, store, queue, secrets, registrations, verifiers, ledger, receiver)


Build = Callable[..., Awaitable[Harness]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def build(tmp_path: Path, redis_client: aioredis.Redis, clock: ManualClock) -> AsyncIterator[Build]:
    """``await build(queue_class=…, redis=…, certs=…)``: a harness in a fresh directory, closed after the test."""
    async with AsyncExitStack() as stack:

        async def make(
            *,
            queue_class: type[SqliteMessageQueue] = SqliteMessageQueue,
            redis: aioredis.Redis = redis_client,
            certs: Callable[[httpx.Request], httpx.Response] = serve_jwks,
        ) -> Harness:
            directory = tmp_path / uuid.uuid4().hex
            store = SqliteDocumentStore(directory / "store.db", clock=clock)
            stack.push_async_callback(store.close)
            queue = queue_class(directory / "queue.db", clock=clock)
            stack.push_async_callback(queue.close)
            http = await stack.enter_async_context(httpx.AsyncClient(transport=httpx.MockTransport(certs)))
            secrets = LocalSecretStore(directory, clock=clock)
            harness = assemble(store=store, queue=queue, secrets=secrets, redis=redis, http=http, clock=clock)
            # Runs before the store closes: the exit stack unwinds last-in first-out.
            stack.push_async_callback(harness.receiver.drain)
            return harness

        yield make


@pytest.fixture
async def harness(build: Build) -> Harness:
    return await build()


@pytest.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    """A client of a port nobody listens on; it fails at once rather than retrying with backoff."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = aioredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)
    try:
        yield client
    finally:
        await client.aclose()
