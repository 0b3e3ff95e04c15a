"""``httpx.Auth`` flows, the one way adapters authenticate (STYLE: httpx ``_auth.py``).

``auth_for`` picks the flow for a credential type. The OAuth types get ``RefreshingAuth``: it asks its
``TokenSource`` for the current access token (refreshed first when it has expired), sends the request, and on a 401
asks for a newer token once and sends once more; a second 401 raises ``CredentialRejected`` naming the connection —
never a loop. The flow itself does no I/O beyond awaiting its source, so tests step it by hand. Static types set a
header; a client certificate is not a header at all but the transport's TLS identity (``client_ssl_context``).
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import httpx

from castiel.credentials.types import (
    OAUTH_TYPES,
    ApiKey,
    BasicAuth,
    BearerToken,
    ClientCertificate,
    Credential,
)
from castiel.errors import ConfigError, InvalidGrant
from castiel.models import Provider

API_KEY_HEADERS: dict[Provider, tuple[str, str]] = {Provider.GOOGLE: ("X-Goog-Api-Key", "")}
"""Where a provider expects an API key (header, prefix); the others take it as a bearer token."""
_DEFAULT_API_KEY_HEADER = ("Authorization", "Bearer ")


class CredentialRejected(InvalidGrant):
    """The provider refused a freshly refreshed token too: the grant no longer authorises this connection."""


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and the credential version it belongs to (so a refresh knows which one was rejected)."""

    value: str
    version: int
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        return f"Token(version={self.version}, expires_at={self.expires_at!r})"


class TokenSource(Protocol):
    """Where ``RefreshingAuth`` gets access tokens; the credential service implements it per connection."""

    label: str
    """Names the connection in errors ("connection c-1 (github)")."""

    async def current(self) -> Token:
        """The token to send: the stored one, refreshed first when it has expired or was never minted."""
        ...

    async def renew(self, rejected: Token) -> Token:
        """A token newer than ``rejected``: refreshed under the credential's lock, or another holder's fresh one."""
        ...


class RefreshingAuth(httpx.Auth):
    """Bearer auth that refreshes before sending when expired, and once after a 401."""

    requires_request_body = True  # the retry after a 401 sends the same body again

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    def __repr__(self) -> str:
        return f"RefreshingAuth({self._source.label})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise ConfigError("refreshing credentials need an httpx.AsyncClient (refreshing is asynchronous I/O)")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._source.current()
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code != 401:
            return
        token = await self._source.renew(token)
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code == 401:
            raise CredentialRejected(
                f"{self._source.label}: the provider answered 401 to a freshly refreshed token; "
                "re-authorise it with `castiel credentials connect`"
            )


class HeaderAuth(httpx.Auth):
    """A static credential in one header."""

    def __init__(self, header: str, value: str) -> None:
        self._header = header
        self._value = value

    def __repr__(self) -> str:
        return f"HeaderAuth(header={self._header!r}, value='***')"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._value
        yield request


class TransportAuth(httpx.Auth):
    """No header: the credential is the transport's TLS client certificate (``client_ssl_context``)."""

    def __repr__(self) -> str:
        return "TransportAuth()"


def auth_for(credential: Credential, provider: Provider, source: TokenSource | None = None) -> httpx.Auth:
    """The flow that authenticates requests with ``credential`` (OAuth types need the ``source`` of their tokens)."""
    if credential.credential_type in OAUTH_TYPES:
        if source is None:
            raise ConfigError(f"a {credential.credential_type} credential needs a token source to refresh from")
        return RefreshingAuth(source)
    if isinstance(credential, BearerToken):
        return HeaderAuth("Authorization", f"Bearer {credential.token.get_secret_value()}")
    if isinstance(credential, ApiKey):
        default_header, default_prefix = API_KEY_HEADERS.get(provider, _DEFAULT_API_KEY_HEADER)
        header = credential.header or default_header
        prefix = credential.prefix if credential.prefix is not None else default_prefix
        return HeaderAuth(header, f"{prefix}{credential.api_key.get_secret_value()}")
    if isinstance(credential, BasicAuth):
        return httpx.BasicAuth(credential.username, credential.password.get_secret_value())
    if isinstance(credential, ClientCertificate):
        return TransportAuth()
    raise ConfigError(
        f"a {credential.credential_type} verifies incoming webhooks; it cannot authenticate outgoing requests"
    )


def client_ssl_context(credential: ClientCertificate) -> ssl.SSLContext:
    """A TLS context presenting ``credential`` (``httpx.AsyncHTTPTransport(verify=…)``), server checks kept on."""
    context = ssl.create_default_context()
    password = credential.password.get_secret_value() if credential.password else None
    # ``load_cert_chain`` reads only files: the key lives in a private temporary directory for the call alone.
    with tempfile.TemporaryDirectory(prefix="castiel-cert-") as directory:
        chain = Path(directory) / "chain.pem"
        chain.touch(mode=0o600)
        chain.write_text(f"{credential.private_key.get_secret_value().strip()}\n{credential.certificate.strip()}\n")
        try:
            context.load_cert_chain(chain, password=password)
        except (ssl.SSLError, ValueError):
            raise ConfigError("the client certificate and private key do not load (PEM, matching pair)") from None
    return context
