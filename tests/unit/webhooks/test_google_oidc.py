"""Google Pub/Sub push tokens: every claim rule, algorithm pinning, and the JWKS cache, against a served key set."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from castiel.clock import ManualClock
from castiel.errors import RetryableError, SignatureError
from castiel.webhooks.google_oidc import GOOGLE_CERTS_URL, LEEWAY_SECONDS, GoogleSigningKeys
from castiel.webhooks.verifiers import GooglePushVerifier

NOW = 1_700_000_000
AUDIENCE = "https://castiel.example/webhooks/reg-1/events"
SERVICE_ACCOUNT = "pubsub-push@castiel-demo.iam.gserviceaccount.com"

SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid, "alg": "RS256", "use": "sig"}


@dataclass
class GoogleCerts:
    """A stand-in for Google's certs endpoint: the JWKS it serves, its cache headers, and how often it was asked."""

    keys: list[dict[str, Any]] = field(default_factory=lambda: [jwk(SIGNING_KEY, "k1")])
    headers: dict[str, str] = field(default_factory=lambda: {"Cache-Control": "public, max-age=3600"})
    status: int = 200
    fetches: int = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == GOOGLE_CERTS_URL
        self.fetches += 1
        await asyncio.sleep(0)  # let concurrent verifications pile up behind the one fetch
        return httpx.Response(self.status, json={"keys": self.keys}, headers=self.headers)


@pytest.fixture
def certs() -> GoogleCerts:
    return GoogleCerts()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def keys(certs: GoogleCerts, clock: ManualClock) -> AsyncIterator[GoogleSigningKeys]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(certs)) as http:
        yield GoogleSigningKeys(http, clock=clock, refetch_interval=30)


@pytest.fixture
def verifier(keys: GoogleSigningKeys) -> GooglePushVerifier:
    return GooglePushVerifier(keys, audience=AUDIENCE, service_account=SERVICE_ACCOUNT)


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "113774264463038321964",
        "sub": "113774264463038321964",
        "email": SERVICE_ACCOUNT,
        "email_verified": True,
        "iat": NOW - 60,
        "exp": NOW + 3540,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not ...}


def token(payload: dict[str, Any] | None = None, *, key: rsa.RSAPrivateKey = SIGNING_KEY, kid: str = "k1") -> str:
    # Signed as raw JWS so that claims PyJWT would refuse to encode (a list issuer, a bool iat) can be tested too.
    body = json.dumps(payload or claims()).encode()
    return jwt.api_jws.encode(body, key, algorithm="RS256", headers={"kid": kid})


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_a_genuine_push_token_verifies(verifier: GooglePushVerifier) -> None:
    verified = await verifier.verify(bearer(token()), b'{"message": {}}', NOW)
    assert (verified.scheme, verified.subject, verified.timestamp) == ("google", SERVICE_ACCOUNT, NOW - 60)


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "accounts.google.com"},
        {"aud": ["https://other.example", AUDIENCE]},
        {"exp": NOW - LEEWAY_SECONDS},
        {"iat": NOW + LEEWAY_SECONDS},
        {"exp": float(NOW + 10)},
        {"sub": ...},
    ],
    ids=["bare-issuer", "audience-list", "expiry-within-leeway", "iat-within-leeway", "float-exp", "no-sub"],
)
async def test_tokens_within_the_rules_verify(verifier: GooglePushVerifier, overrides: dict[str, Any]) -> None:
    assert (await verifier.verify(bearer(token(claims(**overrides))), b"", NOW)).subject == SERVICE_ACCOUNT


HS256_TOKEN = jwt.encode(claims(), "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256", headers={"kid": "k1"})

REJECTED: list[tuple[dict[str, str], str]] = [
    ({}, "missing Authorization header"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "not a Bearer token"),
    ({"Authorization": "Bearer"}, "not a Bearer token"),
    ({"Authorization": "Bearer   "}, "not a Bearer token"),
    (bearer("not-a-jwt"), "not a JWT"),
    (bearer("a.b.c"), "not a JWT"),
    (bearer(unsigned({"alg": "none", "kid": "k1"}, claims())), "not signed with RS256"),
    (bearer(unsigned({"alg": "RS256"}, claims())), "names no key id"),
    (bearer(HS256_TOKEN), "not signed with RS256"),
    (bearer(token(claims(iss="https://evil.example"))), "not issued by accounts.google.com"),
    (bearer(token(claims(iss=["accounts.google.com"]))), "not issued by accounts.google.com"),
    (bearer(token(claims(iss=...))), "not issued by accounts.google.com"),
    (bearer(token(claims(aud="https://other.example"))), "audience is not the registration's"),
    (bearer(token(claims(aud=...))), "audience is not the registration's"),
    (bearer(token(claims(email="someone@castiel-demo.iam.gserviceaccount.com"))), "not the registration's push"),
    (bearer(token(claims(email=SERVICE_ACCOUNT.upper()))), "not the registration's push"),
    (bearer(token(claims(email_verified=False))), "email is not verified"),
    (bearer(token(claims(email_verified="true"))), "email is not verified"),
    (bearer(token(claims(email_verified=...))), "email is not verified"),
    (bearer(token(claims(exp=NOW - LEEWAY_SECONDS - 1))), "expired 31 s ago"),
    (bearer(token(claims(exp=NOW - 7200))), "expired 7200 s ago"),
    (bearer(token(claims(iat=NOW + LEEWAY_SECONDS + 1))), "issued 31 s in the future"),
    (bearer(token(claims(exp=...))), "no numeric exp"),
    (bearer(token(claims(exp="tomorrow"))), "no numeric exp"),
    (bearer(token(claims(iat=True))), "no numeric iat"),
    (bearer(token(key=OTHER_KEY)), "signature does not verify"),
    (bearer(token(kid="k-unknown", key=OTHER_KEY)), "not one of Google's signing keys"),
    (bearer(token()[:-8] + "AAAAAAAA"), "signature does not verify"),
]


@pytest.mark.parametrize(("headers", "reason"), REJECTED, ids=[reason for _, reason in REJECTED])
async def test_every_rule_refuses_with_its_reason(
    verifier: GooglePushVerifier, headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        await verifier.verify(headers, b"", NOW)


async def test_one_fetch_serves_many_verifications(verifier: GooglePushVerifier, certs: GoogleCerts) -> None:
    for _ in range(25):
        await verifier.verify(bearer(token()), b"", NOW)
    await asyncio.gather(*(verifier.verify(bearer(token()), b"", NOW) for _ in range(25)))
    assert certs.fetches == 1


async def test_concurrent_verifications_on_a_cold_cache_share_one_fetch(
    verifier: GooglePushVerifier, certs: GoogleCerts
) -> None:
    await asyncio.gather(*(verifier.verify(bearer(token()), b"", NOW) for _ in range(20)))
    assert certs.fetches == 1


@pytest.mark.parametrize(
    ("cache_headers", "fresh_for"),
    [
        ({"Cache-Control": "public, max-age=3600, must-revalidate, no-transform"}, 3600),
        ({"Cache-Control": "public, max-age=3600", "Age": "3000"}, 600),
        ({"Cache-Control": "max-age=120"}, 120),
        ({"Cache-Control": "no-cache, max-age=3600"}, 30),
        ({}, 30),
    ],
    ids=["max-age", "max-age-less-age", "short", "no-cache", "no-headers"],
)
async def test_keys_are_refetched_once_their_max_age_has_passed(
    verifier: GooglePushVerifier,
    certs: GoogleCerts,
    clock: ManualClock,
    cache_headers: dict[str, str],
    fresh_for: int,
) -> None:
    # Freshness is the response's max-age less its Age; nothing is refetched more often than every 30 s.
    certs.headers = cache_headers
    await verifier.verify(bearer(token()), b"", clock())
    clock.advance(fresh_for - 1)
    await verifier.verify(bearer(token(claims(iat=int(clock()), exp=int(clock()) + 60))), b"", clock())
    assert certs.fetches == 1
    clock.advance(1)
    await verifier.verify(bearer(token(claims(iat=int(clock()), exp=int(clock()) + 60))), b"", clock())
    assert certs.fetches == 2


async def test_a_rotated_key_is_fetched_when_a_token_names_it(
    verifier: GooglePushVerifier, certs: GoogleCerts, clock: ManualClock
) -> None:
    await verifier.verify(bearer(token()), b"", NOW)
    certs.keys = [jwk(SIGNING_KEY, "k1"), jwk(OTHER_KEY, "k2")]
    clock.advance(600)  # well within the cached set's max-age: only the unknown key id makes us look again
    verified = await verifier.verify(bearer(token(key=OTHER_KEY, kid="k2")), b"", NOW + 600)
    assert verified.subject == SERVICE_ACCOUNT
    assert certs.fetches == 2


async def test_unknown_key_ids_refetch_at_most_once_per_interval(
    verifier: GooglePushVerifier, certs: GoogleCerts, clock: ManualClock
) -> None:
    await verifier.verify(bearer(token()), b"", NOW)
    for kid in ("forged-1", "forged-2", "forged-3"):
        with pytest.raises(SignatureError, match="not one of Google's signing keys"):
            await verifier.verify(bearer(token(kid=kid)), b"", NOW)
    assert certs.fetches == 1  # the first fetch was moments ago
    clock.advance(30)
    with pytest.raises(SignatureError, match="not one of Google's signing keys"):
        await verifier.verify(bearer(token(kid="forged-4")), b"", clock())
    assert certs.fetches == 2


async def test_google_unreachable_with_no_keys_is_retryable(verifier: GooglePushVerifier, certs: GoogleCerts) -> None:
    certs.status = 503
    with pytest.raises(RetryableError, match="could not fetch Google's signing keys"):
        await verifier.verify(bearer(token()), b"", NOW)


async def test_google_unreachable_after_max_age_keeps_the_cached_keys(
    verifier: GooglePushVerifier, certs: GoogleCerts, clock: ManualClock
) -> None:
    await verifier.verify(bearer(token()), b"", NOW)
    certs.status = 500
    clock.advance(3600)
    fresh = claims(iat=int(clock()), exp=int(clock()) + 60)
    assert (await verifier.verify(bearer(token(fresh)), b"", clock())).subject == SERVICE_ACCOUNT
    assert certs.fetches == 2


@pytest.mark.parametrize(
    ("published", "served"),
    [
        ([jwk(SIGNING_KEY, "k1") | {"kty": "EC"}], "no RS256 signing keys"),
        ([jwk(SIGNING_KEY, "k1") | {"alg": "RS512"}], "no RS256 signing keys"),
        ([{"kty": "RSA", "kid": "k1", "n": "@@", "e": "AQAB"}], "no RS256 signing keys"),
        ([jwk(SIGNING_KEY, "k1") | {"kid": 7}], "no RS256 signing keys"),
    ],
    ids=["not-rsa", "other-alg", "broken-modulus", "numeric-kid"],
)
async def test_unusable_published_keys_are_skipped(
    verifier: GooglePushVerifier, certs: GoogleCerts, published: list[dict[str, Any]], served: str
) -> None:
    certs.keys = published
    with pytest.raises(RetryableError, match=served):
        await verifier.verify(bearer(token()), b"", NOW)


SEGMENTS = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=60).map(lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()),
    st.sampled_from([unsigned({"alg": "RS256", "kid": "k1"}, claims()).split(".")[0], token().split(".")[1]]),
)
TOKENS: st.SearchStrategy[str] = st.lists(SEGMENTS, min_size=1, max_size=4).map(".".join)
AUTHORIZATION: Callable[[str], str] = "Bearer {}".format


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    authorization=st.one_of(TOKENS.map(AUTHORIZATION), st.text(max_size=60)),
    name=st.sampled_from(["Authorization", "authorization", "AUTHORIZATION", "X-Other"]),
)
async def test_fuzzed_authorization_headers_only_ever_raise_signature_error(
    verifier: GooglePushVerifier, authorization: str, name: str
) -> None:
    with pytest.raises(SignatureError):
        await verifier.verify({name: authorization}, b"", NOW)
