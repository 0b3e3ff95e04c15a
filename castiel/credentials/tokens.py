"""The ``TokenSource`` of one connection's OAuth credential: the stored token, refreshed through the credential
service's locked path when it has expired or the provider rejected it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from castiel.clock import Clock, now_utc
from castiel.credentials.auth import CredentialRejected, Token
from castiel.credentials.records import Current
from castiel.credentials.types import access_token, is_expired
from castiel.errors import InvalidGrant
from castiel.models import Connection

Refresh = Callable[[int], Awaitable[Current]]
"""Refresh the credential unless a version newer than the one given exists; the credential after."""


class ConnectionTokens:
    """A connection's access tokens for ``RefreshingAuth``."""

    def __init__(self, connection: Connection, current: Current, refresh: Refresh, clock: Clock) -> None:
        self._current = current
        self._refresh_from = refresh
        self._clock = clock
        self.label = f"connection {connection.id} ({connection.provider.value})"

    async def current(self) -> Token:
        """The stored token, refreshed first when it is missing or expired."""
        value = self._current.value
        stale = access_token(value) is None or is_expired(value, now_utc(self._clock))
        if stale and self._current.metadata.refreshable:
            await self._refresh(self._current.metadata.version)
        return self._token()

    async def renew(self, rejected: Token) -> Token:
        """A token newer than ``rejected`` (refreshing it unless another holder already has)."""
        if self._current.metadata.version <= rejected.version:
            if not self._current.metadata.refreshable:
                raise CredentialRejected(
                    f"{self.label}: the provider answered 401 and the credential has no refresh token; "
                    "re-authorise it with `castiel credentials connect`"
                )
            await self._refresh(rejected.version)
        return self._token()

    async def _refresh(self, seen_version: int) -> None:
        self._current = await self._refresh_from(seen_version)

    def _token(self) -> Token:
        token = access_token(self._current.value)
        if token is None:
            raise InvalidGrant(f"{self.label}: the token endpoint issued no access token")
        return Token(token, self._current.metadata.version, self._current.value.expires_at)
