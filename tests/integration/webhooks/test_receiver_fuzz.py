"""Hypothesis through the real HTTP function ``webhook_receiver``: arbitrary headers and bodies never cost a 5xx or an
exception, and nothing reaches ``sync-outbound`` unless its signature verified.

The function is called as the Functions host calls it, ``get_user_function()`` with an ``azure.functions.HttpRequest``,
on the process runtime built from the environment (SQLite store and queue in a private data directory, the session's
Redis). Its receiver is swapped for one wired the same way on those backends whose Google keys come from a served
JWKS, so no example reaches the network. pytest-asyncio's loop runs only during async tests, so these sync tests own
an event loop and run each example to completion on it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import function_app
from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.clock import ManualClock
from castiel.devhost.convert import InvocationContext
from castiel.runtime import close_runtime, get_runtime

from .conftest import (
    AUDIENCE,
    GOOGLE_KEY,
    GOOGLE_KID,
    KINDS,
    NOW,
    ORGANIZATION_ID,
    QUEUE,
    SAMPLES,
    SERVICE_ACCOUNT,
    Harness,
    assemble,
    auth_headers,
    google_token,
    serve_jwks,
)

# Built from its decorator rather than listed with app.get_functions(), which refuses to list an app twice a process.
WEBHOOK_RECEIVER = function_app.webhook_receiver.build()
# About 200 examples in all: the fixture is built once per test, not per example.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------- the function on a runtime of its own


@dataclass
class App:
    """The HTTP function on a runtime built in ``loop``, and the receiver wired into it."""

    loop: asyncio.AbstractEventLoop
    harness: Harness
    function: Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]

    def post(self, registration_id: str, headers: dict[str, str], body: bytes) -> func.HttpResponse:
        """One request through the function, its audit line written before this returns."""
        request = func.HttpRequest(
            method="POST",
            url=f"http://localhost/webhooks/{registration_id}/events",
            route_params={"registrationId": registration_id},
            headers=headers,
            body=body,
        )
        response = self.loop.run_until_complete(self.function(request))
        self.loop.run_until_complete(self.harness.receiver.drain())
        return response

    def queued(self) -> int:
        """Messages on ``sync-outbound``."""
        return self.loop.run_until_complete(self.harness.queue.stats(QUEUE)).active


async def start(http: httpx.AsyncClient) -> App:
    # Settings may have been read before data_dir pointed CASTIEL_DATA_DIR here; closing forgets them.
    await close_runtime()
    runtime = await get_runtime()
    await runtime.redis.flushdb()
    harness = assemble(
        store=runtime.store,
        queue=runtime.queue,
        secrets=runtime.secrets,
        redis=runtime.redis,
        http=http,
        clock=ManualClock(NOW),
    )
    runtime.webhooks = harness.receiver
    for kind in KINDS:
        await harness.register(kind)
    context = InvocationContext("invocation-1", "webhook_receiver", ".", None)
    return App(asyncio.get_running_loop(), harness, partial(WEBHOOK_RECEIVER.get_user_function(), context=context))


@pytest.fixture
def app(data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    loop = asyncio.new_event_loop()
    http = httpx.AsyncClient(transport=httpx.MockTransport(serve_jwks))
    try:
        yield loop.run_until_complete(start(http))
    finally:
        loop.run_until_complete(close_runtime())
        loop.run_until_complete(http.aclose())
        loop.close()


# ---------------------------------------------------------------- forgeries a fuzzer would not find alone


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned_jwt(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64url(sign(signing_input.encode()))}"


_CLAIMS = {
    "iss": "https://accounts.google.com",
    "aud": AUDIENCE,
    "email": SERVICE_ACCOUNT,
    "email_verified": True,
    "iat": int(NOW),
    "exp": int(NOW) + 3600,
}
_PUBLIC_PEM = GOOGLE_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)

FORGED_TOKENS = [
    # Every claim right, signed by a key Google never published under that key id.
    google_token(NOW, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    # Algorithm confusion: HS256 keyed with the published RSA public key.
    _unsigned_jwt(
        {"alg": "HS256", "kid": GOOGLE_KID}, _CLAIMS, lambda data: hmac.new(_PUBLIC_PEM, data, hashlib.sha256).digest()
    ),
    _unsigned_jwt({"alg": "none", "kid": GOOGLE_KID}, _CLAIMS, lambda _: b""),
    google_token(NOW, kid="a-key-id-google-does-not-publish"),
]

# ---------------------------------------------------------------- strategies

AUTH_HEADERS = [
    "x-hub-signature-256",
    "x-hub-signature",
    "x-github-event",
    "x-github-delivery",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-slack-retry-num",
    "x-notion-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "authorization",
    "content-type",
]
digests = st.binary(min_size=32, max_size=32)
header_values = st.one_of(
    st.text(max_size=40),
    digests.map(lambda d: "sha256=" + d.hex()),
    digests.map(lambda d: "sha256=" + d.hex().upper()),
    digests.map(lambda d: "v0=" + d.hex()),
    st.lists(digests, min_size=1, max_size=3).map(
        lambda ds: " ".join("v1," + base64.b64encode(d).decode() for d in ds)
    ),
    st.integers(int(NOW) - 400, int(NOW) + 400).map(str),
    st.sampled_from(["issues", "issue_comment", "pull_request", "ping", "star"]),
    st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/xml; charset=utf-8"]),
    st.sampled_from(FORGED_TOKENS).map(lambda token: f"Bearer {token}"),
    st.text(max_size=60).map(lambda text: f"Bearer {text}"),
)
header_names = st.one_of(
    st.sampled_from(AUTH_HEADERS),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20),
)
headers_strategy = st.dictionaries(header_names, header_values, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _dumps(value: Any) -> bytes:
    # The standard library writes any JSON, integers beyond 64 bits included, which orjson would refuse to.
    return json.dumps(value).encode()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (keys and indexes), the root excluded."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated_json(draw: st.DrawFn, body: bytes) -> bytes:
    """A JSON sample with one value somewhere inside it replaced by arbitrary JSON, or removed."""
    document = orjson.loads(body)
    *parents, last = draw(st.sampled_from(list(_paths(document))))
    target = document
    for key in parents:
        target = target[key]
    if draw(st.booleans()):
        del target[last]
    else:
        target[last] = draw(json_values)
    return _dumps(document)


@st.composite
def spliced(draw: st.DrawFn, body: bytes) -> bytes:
    """A byte-level edit of ``body``: a slice replaced by arbitrary bytes."""
    start = draw(st.integers(0, len(body)))
    end = draw(st.integers(start, min(len(body), start + 40)))
    return body[:start] + draw(st.binary(max_size=20)) + body[end:]


def bodies(kind: str, *, organization_id: str = ORGANIZATION_ID) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes or JSON, or ``kind``'s sample as it is or edited (SOAP samples sent by ``organization_id``)."""
    sample = SAMPLES[kind].body.replace(ORGANIZATION_ID.encode(), organization_id.encode())
    noise = st.one_of(st.binary(max_size=300), json_values.map(_dumps))
    edited = spliced(sample) if kind == "salesforce-soap" else st.one_of(mutated_json(sample), spliced(sample))
    return st.one_of(noise, st.just(sample), edited)


# Mostly registered ids; one draw in eight is any text at all.
registration_ids = st.sampled_from([*(f"reg-{kind}" for kind in KINDS), None]).flatmap(
    lambda registration_id: st.just(registration_id) if registration_id else st.text(max_size=20)
)


def sample_headers(kind: str) -> dict[str, str]:
    """What ``kind`` sends besides authentication (GitHub's event name, a content type), names lower-cased."""
    return {name.lower(): value for name, value in SAMPLES[kind].headers().items()}


# ---------------------------------------------------------------- properties


@settings(FUZZ, max_examples=120)
@given(data=st.data(), registration_id=registration_ids, headers=headers_strategy)
def test_unsigned_requests_never_fail_and_never_queue(
    app: App, data: st.DataObject, registration_id: str, headers: dict[str, str]
) -> None:
    kind = registration_id.removeprefix("reg-") if registration_id.removeprefix("reg-") in KINDS else "github"
    # A SOAP message counts as signed by its OrganizationId, so unsigned ones come from another org.
    body = data.draw(bodies(kind, organization_id="00D000000000001AAA"))
    before = app.queued()

    response = app.post(registration_id, {**sample_headers(kind), **headers}, body)
    event(f"{registration_id if registration_id == f'reg-{kind}' else 'other id'} -> {response.status_code}")

    assert response.status_code < 500, response.get_body()
    assert app.queued() == before
    if response.status_code < 400:
        # The one unsigned request with a 2xx: Notion's verification token, kept pending.
        assert registration_id == "reg-notion"
        assert response.get_body() == b'{"ok":true}'


@settings(FUZZ, max_examples=80)
@given(data=st.data(), kind=st.sampled_from(KINDS), headers=headers_strategy)
def test_signed_requests_never_fail_and_queue_only_when_accepted(
    app: App, data: st.DataObject, kind: str, headers: dict[str, str]
) -> None:
    body = data.draw(bodies(kind))
    delivery_id = str(data.draw(st.uuids()))
    signed = {name.lower(): value for name, value in auth_headers(kind, body, now=NOW, delivery_id=delivery_id).items()}
    before = app.queued()

    response = app.post(f"reg-{kind}", {**sample_headers(kind), **headers, **signed}, body)
    event(f"{kind} -> {response.status_code}")

    assert response.status_code < 500, response.get_body()
    if response.status_code >= 400:
        assert app.queued() == before
