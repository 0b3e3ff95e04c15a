"""The locked refresh path over real HTTP to the stand-in provider, real Redis, a real SQLite store and secrets file:
rotation kept, a missing refresh token kept, the 401 path, fencing, a dead grant and its recovery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest

from castiel.backends.embedded_redis import free_port
from castiel.backends.redis_client import connect
from castiel.clock import now_utc
from castiel.credentials.alerts import CredentialAlertKind
from castiel.credentials.lock import RefreshLocks
from castiel.credentials.oauth import TokenEndpoint
from castiel.credentials.types import OAuth2AuthorizationCode, access_token, parse_credential
from castiel.credentials.vault import CredentialVault, RefreshResult
from castiel.errors import ConfigError, InvalidGrant, RetryableError
from castiel.models import (
    CredentialMetadata,
    CredentialStatus,
    Provider,
    RefreshOutcome,
    TaskStatus,
    TokenRefreshAudit,
)
from castiel.ports import Query
from tests.integration.credentials.conftest import CLIENT_ID, CLIENT_SECRET, Backends, StandIn, add_user_grant

EXPIRED = now_utc() - timedelta(minutes=5)


def stored_refresh_token(value: object) -> str | None:
    assert isinstance(value, OAuth2AuthorizationCode)
    return value.refresh_token.get_secret_value() if value.refresh_token else None


async def audits(backends: Backends) -> list[TokenRefreshAudit]:
    page = await backends.store.query(TokenRefreshAudit.container, Query(order_by=(("attemptedAt", "asc"),)))
    return [TokenRefreshAudit.model_validate(doc) for doc in page.items]


def api_accepting(tokens: Callable[[], str], seen: list[str]) -> httpx.MockTransport:
    """A provider API that accepts only the token ``tokens()`` currently names."""

    def handle(request: httpx.Request) -> httpx.Response:
        sent = request.headers["Authorization"].removeprefix("Bearer ")
        seen.append(sent)
        return httpx.Response(200 if sent == tokens() else 401)

    return httpx.MockTransport(handle)


async def test_a_rotated_refresh_token_replaces_the_old_one_and_is_used_next_time(
    backends: Backends, oauth: StandIn
) -> None:
    await backends.connection(Provider.GITHUB)
    vault = backends.vault()
    metadata, grant = await add_user_grant(vault, oauth, Provider.GITHUB, expires_at=EXPIRED)
    first_refresh_token = grant.refresh_token

    result = await vault.refresh("t1", metadata.id, seen_version=metadata.version, trigger="test")

    assert result.outcome is RefreshOutcome.REFRESHED
    assert result.current.metadata.version == 2
    assert stored_refresh_token(result.current.value) == grant.refresh_token != first_refresh_token
    reread = await vault.records.value(await vault.records.read("t1", metadata.id))
    assert access_token(reread) == grant.access_token
    assert stored_refresh_token(reread) == grant.refresh_token
    # The stored (rotated) refresh token is the one that works now.
    again = await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")
    assert again.outcome is RefreshOutcome.REFRESHED
    assert oauth.sandbox.calls()[grant.id] == 2
    assert [audit.outcome for audit in await audits(backends)] == [RefreshOutcome.REFRESHED] * 2


@pytest.mark.parametrize(
    ("provider", "control"),
    [(Provider.GOOGLE, {}), (Provider.GITHUB, {"omit_refresh_token": True}), (Provider.NOTION, {"rotate": False})],
)
async def test_a_response_without_a_refresh_token_keeps_the_stored_one(
    backends: Backends, oauth: StandIn, provider: Provider, control: dict[str, object]
) -> None:
    await backends.connection(provider)
    vault = backends.vault()
    metadata, grant = await add_user_grant(vault, oauth, provider, expires_at=EXPIRED)
    if control:
        oauth.sandbox.control(grant.id, **control)
    kept = grant.refresh_token

    result = await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")

    assert access_token(result.current.value) == grant.access_token
    assert stored_refresh_token(result.current.value) == kept
    second = await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")
    assert second.outcome is RefreshOutcome.REFRESHED


async def test_salesforce_keeps_the_instance_url_and_leaves_the_expiry_unknown(
    backends: Backends, oauth: StandIn
) -> None:
    connection = await backends.connection(Provider.SALESFORCE)
    vault = backends.vault()
    with pytest.raises(ConfigError, match="has no credential"):
        await vault.api_root_for_connection(connection)
    metadata, _ = await add_user_grant(vault, oauth, Provider.SALESFORCE, expires_at=EXPIRED)

    result = await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")

    assert result.current.metadata.expires_at is None
    connection = await backends.read_connection()
    assert await vault.api_root_for_connection(connection) == f"{oauth.url}/salesforce"
    github = await backends.connection(Provider.GITHUB, "conn-2")
    assert await vault.api_root_for_connection(github) is None


async def test_an_expired_token_is_refreshed_before_the_request_is_sent(backends: Backends, oauth: StandIn) -> None:
    connection = await backends.connection(Provider.SLACK)
    vault = backends.vault()
    _, grant = await add_user_grant(vault, oauth, Provider.SLACK, expires_at=EXPIRED)
    stale = grant.access_token
    seen: list[str] = []

    auth = await vault.auth_for_connection(await backends.read_connection(connection.id))
    async with httpx.AsyncClient(transport=api_accepting(lambda: grant.access_token, seen)) as api:
        response = await api.get("https://slack.test/api/conversations.history", auth=auth)

    assert response.status_code == 200
    assert seen == [grant.access_token]
    assert stale not in seen


async def test_a_401_refreshes_once_under_the_lock_and_retries_once(backends: Backends, oauth: StandIn) -> None:
    await backends.connection(Provider.GITHUB)
    vault = backends.vault()
    _, grant = await add_user_grant(vault, oauth, Provider.GITHUB, expires_at=now_utc() + timedelta(hours=1))
    rejected = grant.access_token
    grant.access_token = "revoked-by-the-provider"  # the API stops accepting the stored token
    seen: list[str] = []

    auth = await vault.auth_for_connection(await backends.read_connection())
    async with httpx.AsyncClient(transport=api_accepting(lambda: grant.access_token, seen)) as api:
        response = await api.get("https://api.github.test/repos/o/r/issues", auth=auth)

    assert response.status_code == 200
    assert seen == [rejected, grant.access_token]
    assert oauth.sandbox.calls()[grant.id] == 1


async def test_a_server_error_is_retryable_audited_and_changes_nothing(backends: Backends, oauth: StandIn) -> None:
    await backends.connection(Provider.GOOGLE)
    vault = backends.vault()
    metadata, grant = await add_user_grant(vault, oauth, Provider.GOOGLE, expires_at=EXPIRED)
    oauth.sandbox.control(grant.id, server_errors=1)

    with pytest.raises(RetryableError, match="503"):
        await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")

    unchanged = await vault.records.read("t1", metadata.id)
    assert (unchanged.version, unchanged.status) == (1, CredentialStatus.ACTIVE)
    assert [audit.outcome for audit in await audits(backends)] == [RefreshOutcome.FAILED]
    result = await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")
    assert result.outcome is RefreshOutcome.REFRESHED


async def test_a_dead_grant_pauses_its_connections_tasks_alerts_once_and_recovers_on_reauthorisation(
    backends: Backends, oauth: StandIn
) -> None:
    await backends.connection(Provider.SLACK)
    await backends.connection(Provider.GITHUB, "conn-other")
    for task_id, status in (("t-pending", "pending"), ("t-queued", "queued"), ("t-paused", "paused")):
        await backends.task("conn-1", task_id, status)
    await backends.task("conn-other", "t-elsewhere", "pending")
    metadata, grant = await add_user_grant(backends.vault(), oauth, Provider.SLACK, expires_at=EXPIRED)
    oauth.sandbox.control(grant.id, refuse="invalid_grant")

    # Two processes refresh at once, and a third later: one transition, one alert, no retry storm.
    outcomes = await asyncio.gather(
        *(vault.refresh("t1", metadata.id, seen_version=1, trigger="test") for vault in (backends.vault(),) * 2),
        backends.vault().refresh("t1", metadata.id, seen_version=1, trigger="test"),
        return_exceptions=True,
    )
    with pytest.raises(InvalidGrant, match="needs re-authorisation"):
        await backends.vault().refresh("t1", metadata.id, seen_version=1, trigger="test")

    assert all(isinstance(outcome, InvalidGrant) for outcome in outcomes)
    assert [alert.kind for alert in backends.alerts] == [CredentialAlertKind.NEEDS_REAUTH]
    assert "invalid_refresh_token" in backends.alerts[0].detail
    assert "castiel credentials connect --tenant t1 --connection conn-1" in backends.alerts[0].detail
    dead = await backends.vault().records.read("t1", metadata.id)
    assert dead.status is CredentialStatus.NEEDS_REAUTH
    assert (await backends.read_connection()).status == "needs_reauth"
    for task_id in ("t-pending", "t-queued", "t-paused"):
        assert (await backends.read_task(task_id)).status is TaskStatus.NEEDS_REAUTH
    assert (await backends.read_task("t-elsewhere")).status is TaskStatus.PENDING
    assert oauth.sandbox.calls()[grant.id] == 1  # one got through the lock; the others found the grant dead
    with pytest.raises(InvalidGrant, match="castiel credentials connect"):
        await backends.vault().auth_for_connection(await backends.read_connection())

    fresh = oauth.sandbox.issue("slack", CLIENT_ID)
    value = parse_credential(
        "oauth2_authorization_code",
        {
            "access_token": fresh.access_token,
            "refresh_token": fresh.refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "token_url": oauth.token_url(Provider.SLACK),
        },
    )
    restored = await backends.vault().reauthorize("t1", "conn-1", value)

    assert (restored.id, restored.status, restored.version) == (metadata.id, CredentialStatus.ACTIVE, 2)
    assert (await backends.read_connection()).status == "active"
    for task_id in ("t-pending", "t-queued", "t-paused"):
        task = await backends.read_task(task_id)
        assert task.status is TaskStatus.PENDING
        assert task.next_run_at <= now_utc()
    assert len(backends.alerts) == 1
    auth = await backends.vault().auth_for_connection(await backends.read_connection())
    assert auth is not None


async def delete_locks(backends: Backends) -> None:
    """What a lock expiry does: the key is gone, the holder does not know."""
    keys = [key async for key in backends.redis.scan_iter("castiel:credential:*:lock")]
    assert keys, "the holder's lock should exist"
    await backends.redis.delete(*keys)


def vault_with_token_endpoint(
    backends: Backends, handler: Callable[[httpx.Request], Awaitable[httpx.Response]]
) -> CredentialVault:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return CredentialVault(backends.store, backends.secrets, RefreshLocks(backends.redis), TokenEndpoint(http))


async def refresh_overtaken(backends: Backends, credential_id: str, answer: dict[str, str]) -> RefreshResult:
    """Holder A's refresh of ``credential_id``: stuck at the token endpoint while its lock expires and holder B
    refreshes, then answered with ``answer``."""

    async def stuck_then_answer(request: httpx.Request) -> httpx.Response:
        await delete_locks(backends)
        await backends.vault().refresh("t1", credential_id, seen_version=None, trigger="holder-b")
        return httpx.Response(200, json=answer)

    stale_holder = vault_with_token_endpoint(backends, stuck_then_answer)
    return await stale_holder.refresh("t1", credential_id, seen_version=None, trigger="holder-a")


async def test_a_refresh_whose_lock_expired_mid_flight_cannot_overwrite_a_newer_version(
    backends: Backends, oauth: StandIn
) -> None:
    await backends.connection(Provider.GITHUB)
    metadata, grant = await add_user_grant(backends.vault(), oauth, Provider.GITHUB, expires_at=EXPIRED)
    stale = {"access_token": "stale-token-of-a", "refresh_token": "stale-rt-of-a"}
    result = await refresh_overtaken(backends, metadata.id, stale)

    stored = await backends.vault().records.read("t1", metadata.id)
    value = await backends.vault().records.value(stored)
    assert stored.version == 2
    assert stored.fence == 2  # B's token: A's (1) is older
    assert access_token(value) == grant.access_token
    assert result.outcome is RefreshOutcome.ALREADY_FRESH
    assert access_token(result.current.value) == grant.access_token
    versions = await backends.secrets.list_versions(stored.secret_name)
    values = [(await backends.secrets.get_secret(stored.secret_name, v.version)).reveal() for v in versions]
    assert not any("stale-token-of-a" in text for text in values)


async def test_invalid_grant_after_a_concurrent_rotation_is_not_taken_for_a_dead_grant(
    backends: Backends, oauth: StandIn
) -> None:
    await backends.connection(Provider.GITHUB)
    metadata, grant = await add_user_grant(backends.vault(), oauth, Provider.GITHUB, expires_at=EXPIRED)
    refused = {"error": "bad_refresh_token", "error_description": "already used"}
    result = await refresh_overtaken(backends, metadata.id, refused)

    assert result.outcome is RefreshOutcome.ALREADY_FRESH
    assert access_token(result.current.value) == grant.access_token
    assert (await backends.vault().records.read("t1", metadata.id)).status is CredentialStatus.ACTIVE
    assert backends.alerts == []


async def test_with_redis_down_a_refresh_still_works_under_a_local_lock_and_says_so(
    backends: Backends, oauth: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="castiel")
    await backends.connection(Provider.GITHUB)
    metadata, grant = await add_user_grant(backends.vault(), oauth, Provider.GITHUB, expires_at=EXPIRED)
    dead_redis = connect(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    vault = CredentialVault(backends.store, backends.secrets, RefreshLocks(dead_redis), TokenEndpoint(backends.http))
    try:
        results = await asyncio.gather(
            *(vault.refresh("t1", metadata.id, seen_version=1, trigger="test") for _ in range(5))
        )
    finally:
        await dead_redis.aclose()

    assert {access_token(result.current.value) for result in results} == {grant.access_token}
    assert oauth.sandbox.calls()[grant.id] == 1
    assert "credentials.lock_local" in caplog.text
    assert "Redis unreachable" in caplog.text


async def test_a_static_credential_cannot_be_refreshed(backends: Backends) -> None:
    await backends.connection(Provider.GITHUB)
    vault = backends.vault()
    metadata = await vault.add("t1", "conn-1", parse_credential("api_key", {"api_key": "k"}), credential_id="k1")
    with pytest.raises(ConfigError, match="nothing to refresh it with"):
        await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")
    stored = await vault.records.read("t1", "k1")
    assert isinstance(stored, CredentialMetadata)
    assert await audits(backends) == []
