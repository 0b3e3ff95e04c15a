"""The httpx.Auth flows: stepped by hand like httpx's own tests/test_auth.py, and through httpx.MockTransport."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest

from castiel.credentials.auth import CredentialRejected, RefreshingAuth, Token, auth_for, client_ssl_context
from castiel.credentials.types import ClientCertificate, parse_credential
from castiel.errors import ConfigError, InvalidGrant
from castiel.models import Provider
from tests.unit.credentials.keys import certificate_pem, private_key_pem


@dataclass
class FakeSource:
    """A TokenSource whose tokens are ``token-<n>``; counts what the flow asked for."""

    label: str = "connection c-1 (github)"
    version: int = 1
    expired: bool = False
    renewals: list[int] = field(default_factory=list)
    currents: int = 0

    async def current(self) -> Token:
        self.currents += 1
        if self.expired:
            self.version += 1
            self.expired = False
        return Token(f"token-{self.version}", self.version)

    async def renew(self, rejected: Token) -> Token:
        self.renewals.append(rejected.version)
        self.version = rejected.version + 1
        return Token(f"token-{self.version}", self.version)


REQUEST = httpx.Request("POST", "https://api.example.test/items", content=b'{"a": 1}')


async def test_a_success_sends_once_with_the_current_token() -> None:
    source = FakeSource()
    flow = RefreshingAuth(source).async_auth_flow(REQUEST)
    request = await flow.__anext__()
    assert request.headers["Authorization"] == "Bearer token-1"
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx.Response(200, request=request))
    assert source.renewals == []


async def test_an_expired_token_is_refreshed_before_sending() -> None:
    source = FakeSource(expired=True)
    flow = RefreshingAuth(source).async_auth_flow(REQUEST)
    request = await flow.__anext__()
    assert request.headers["Authorization"] == "Bearer token-2"


async def test_a_401_refreshes_once_and_retries_once() -> None:
    source = FakeSource()
    flow = RefreshingAuth(source).async_auth_flow(REQUEST)
    request = await flow.__anext__()
    retried = await flow.asend(httpx.Response(401, request=request))
    assert retried.headers["Authorization"] == "Bearer token-2"
    assert source.renewals == [1]
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx.Response(200, request=retried))


async def test_a_second_401_is_an_invalid_grant_naming_the_connection_not_a_loop() -> None:
    source = FakeSource()
    flow = RefreshingAuth(source).async_auth_flow(REQUEST)
    request = await flow.__anext__()
    retried = await flow.asend(httpx.Response(401, request=request))
    with pytest.raises(CredentialRejected, match="connection c-1 \\(github\\)") as caught:
        await flow.asend(httpx.Response(401, request=retried))
    assert isinstance(caught.value, InvalidGrant)
    assert source.renewals == [1]


async def test_through_a_client_the_retry_carries_the_same_body() -> None:
    seen: list[tuple[str, bytes]] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["Authorization"], request.content))
        return httpx.Response(200 if request.headers["Authorization"] == "Bearer token-2" else 401)

    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        response = await client.post(
            "https://api.example.test/items", content=b"payload", auth=RefreshingAuth(FakeSource())
        )
    assert response.status_code == 200
    assert seen == [("Bearer token-1", b"payload"), ("Bearer token-2", b"payload")]


async def test_through_a_client_two_401s_raise_and_stop() -> None:
    calls = 0

    def api(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401)

    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        with pytest.raises(CredentialRejected):
            await client.get("https://api.example.test/items", auth=RefreshingAuth(FakeSource()))
    assert calls == 2


def test_a_sync_client_is_refused_with_a_clear_error() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    with httpx.Client(transport=transport) as client, pytest.raises(ConfigError, match="AsyncClient"):
        client.get("https://api.example.test/", auth=RefreshingAuth(FakeSource()))


def test_the_repr_names_the_connection_and_no_token() -> None:
    assert repr(RefreshingAuth(FakeSource())) == "RefreshingAuth(connection c-1 (github))"
    assert "token-1" not in repr(Token("token-1", 1))


@pytest.mark.parametrize(
    ("credential_type", "fields", "provider", "header", "value"),
    [
        ("bearer_token", {"token": "tok"}, Provider.NOTION, "authorization", "Bearer tok"),
        ("api_key", {"api_key": "k1"}, Provider.GOOGLE, "x-goog-api-key", "k1"),
        ("api_key", {"api_key": "k1"}, Provider.NOTION, "authorization", "Bearer k1"),
        ("api_key", {"api_key": "k1", "header": "X-Api-Key", "prefix": ""}, Provider.STANDARD, "x-api-key", "k1"),
        (
            "basic_auth",
            {"username": "u", "password": "p"},
            Provider.STANDARD,
            "authorization",
            "Basic " + base64.b64encode(b"u:p").decode(),
        ),
    ],
)
async def test_static_types_set_their_header(
    credential_type: str, fields: dict[str, str], provider: Provider, header: str, value: str
) -> None:
    seen: list[httpx.Headers] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200)

    auth = auth_for(parse_credential(credential_type, fields), provider)
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        await client.get("https://api.example.test/", auth=auth)
    assert seen[0][header] == value
    assert value not in repr(auth)


def test_oauth_types_need_a_token_source() -> None:
    value = parse_credential("oauth2_authorization_code", {"access_token": "a"})
    with pytest.raises(ConfigError, match="token source"):
        auth_for(value, Provider.GITHUB)


def test_a_webhook_secret_never_authenticates_outgoing_requests() -> None:
    with pytest.raises(ConfigError, match="incoming webhooks"):
        auth_for(parse_credential("webhook_secret", {"secret": "s"}), Provider.GITHUB)


def test_a_client_certificate_is_the_transports_tls_identity() -> None:
    value = parse_credential(
        "client_certificate",
        {"certificate": certificate_pem(datetime(2099, 1, 1, tzinfo=UTC)), "private_key": private_key_pem()},
    )
    assert isinstance(value, ClientCertificate)
    context = client_ssl_context(value)
    assert context.verify_mode.name == "CERT_REQUIRED"  # the server is still checked
    request = httpx.Request("GET", "https://api.example.test/")
    flow = auth_for(value, Provider.STANDARD).sync_auth_flow(request)
    assert "authorization" not in next(flow).headers


def test_a_certificate_that_does_not_match_its_key_is_a_config_error() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    value = parse_credential(
        "client_certificate",
        {"certificate": certificate_pem(datetime(2099, 1, 1, tzinfo=UTC)), "private_key": other.decode()},
    )
    assert isinstance(value, ClientCertificate)
    with pytest.raises(ConfigError, match="do not load"):
        client_ssl_context(value)
