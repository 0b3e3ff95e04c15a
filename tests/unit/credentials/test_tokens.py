"""A connection's token source: refresh when expired or rejected, and never refresh what cannot be refreshed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from castiel.clock import ManualClock, now_utc
from castiel.credentials.auth import CredentialRejected, Token
from castiel.credentials.records import Current
from castiel.credentials.tokens import ConnectionTokens
from castiel.credentials.types import parse_credential
from castiel.models import Connection, CredentialMetadata, Provider

CLOCK = ManualClock()
CONNECTION = Connection(id="c-1", tenant_id="t", integration_id="github", provider=Provider.GITHUB)


def current(version: int, token: str, expires_at: datetime | None, *, refreshable: bool = True) -> Current:
    fields = {"access_token": token, **({"refresh_token": "r"} if refreshable else {})}
    value = parse_credential("oauth2_authorization_code", {**fields, "expires_at": expires_at})
    metadata = CredentialMetadata(
        id="cred", tenant_id="t", connection_id="c-1", provider=Provider.GITHUB, secret_name="s",
        credential_type="oauth2_authorization_code", version=version, refreshable=refreshable,
    )  # fmt: skip
    return Current(metadata, value)


class Refreshes:
    def __init__(self) -> None:
        self.seen: list[int] = []

    async def __call__(self, seen_version: int) -> Current:
        self.seen.append(seen_version)
        return current(seen_version + 1, f"token-{seen_version + 1}", now_utc(CLOCK) + timedelta(hours=1))


async def test_a_fresh_token_is_sent_as_stored() -> None:
    refreshes = Refreshes()
    tokens = ConnectionTokens(CONNECTION, current(1, "token-1", now_utc(CLOCK) + timedelta(hours=1)), refreshes, CLOCK)
    assert await tokens.current() == Token("token-1", 1, now_utc(CLOCK) + timedelta(hours=1))
    assert refreshes.seen == []
    assert tokens.label == "connection c-1 (github)"


async def test_an_expired_token_is_refreshed_first_and_a_rejected_one_once() -> None:
    refreshes = Refreshes()
    tokens = ConnectionTokens(CONNECTION, current(1, "token-1", now_utc(CLOCK)), refreshes, CLOCK)
    assert (await tokens.current()).value == "token-2"
    assert (await tokens.renew(Token("token-2", 2))).value == "token-3"
    # Another request already renewed past the rejected version: no second refresh.
    assert (await tokens.renew(Token("token-2", 2))).value == "token-3"
    assert refreshes.seen == [1, 2]


async def test_without_a_refresh_token_an_expired_token_is_tried_and_a_401_is_final() -> None:
    refreshes = Refreshes()
    expired = datetime(2020, 1, 1, tzinfo=UTC)
    tokens = ConnectionTokens(CONNECTION, current(1, "forever", expired, refreshable=False), refreshes, CLOCK)
    assert (await tokens.current()).value == "forever"
    with pytest.raises(CredentialRejected, match="no refresh token"):
        await tokens.renew(Token("forever", 1))
    assert refreshes.seen == []
