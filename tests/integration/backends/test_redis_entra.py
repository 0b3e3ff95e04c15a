"""Signing in to Redis with a Microsoft Entra token (``REDIS_AUTH=entra_id``, Azure Managed Redis), on a real Redis
whose ACL knows the identity as Azure Managed Redis does: a user named by the token's object id (``oid``) whose
password is the token. The token comes from redis-entraid's provider, fed by a stand-in for the Azure credential."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.core.credentials import AccessToken
from redis.auth.token_manager import RetryPolicy, TokenManagerConfig
from redis_entraid.cred_provider import EntraIdCredentialsProvider
from redis_entraid.identity_provider import DefaultAzureCredentialProvider

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.redis_client import REDIS_SCOPE, connect, credential_provider, unreachable
from castiel.errors import ConfigError, RetryableError
from castiel.redis_script import RedisScript
from castiel.settings import Settings, load_settings

OBJECT_ID = "9a5c3f1e-0000-4000-8000-00000000cafe"


def entra_token(object_id: str = OBJECT_ID, lifetime: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode(
        {"oid": object_id, "iat": now, "exp": now + lifetime},
        "a stand-in signing key, never verified by Redis",
        "HS256",
    )


class IdentityStandIn:
    """The synchronous Azure credential redis-entraid calls (``DefaultAzureCredential`` in Azure)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes += scopes
        return AccessToken(self.token, int(time.time()) + 3600)


def provider(identity: IdentityStandIn) -> EntraIdCredentialsProvider:
    config = TokenManagerConfig(0.7, 0, 1000, RetryPolicy(1, 10))
    return EntraIdCredentialsProvider(DefaultAzureCredentialProvider(identity, (REDIS_SCOPE,)), config)


@pytest.fixture(scope="module")
def cache() -> Iterator[EmbeddedRedis]:
    """A Redis of this module's own (its ACL and password are changed), asking every client to sign in."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
async def signed_up(cache: EmbeddedRedis) -> AsyncIterator[str]:
    """The identity's ACL user, as the cache's access policy assignment creates it; its token."""
    token = entra_token()
    admin = connect(cache.url, timeout_seconds=2.0)
    await admin.execute_command("ACL", "SETUSER", OBJECT_ID, "reset", "on", f">{token}", "~*", "&*", "+@all")
    yield token
    await admin.execute_command("ACL", "DELUSER", OBJECT_ID)
    await admin.aclose()


async def test_a_client_signs_in_as_the_identity_with_its_entra_token(cache: EmbeddedRedis, signed_up: str) -> None:
    identity = IdentityStandIn(signed_up)
    client = connect(cache.url, timeout_seconds=2.0, credentials=provider(identity))

    try:
        assert await client.ping()
        assert (await client.execute_command("ACL", "WHOAMI")).decode() == OBJECT_ID
    finally:
        await client.aclose()
    assert set(identity.scopes) == {REDIS_SCOPE}


async def test_a_refused_token_is_a_retryable_error_saying_so(cache: EmbeddedRedis, signed_up: str) -> None:
    client = connect(cache.url, timeout_seconds=2.0, credentials=provider(IdentityStandIn(entra_token(lifetime=60))))
    script = RedisScript(client, "castiel.webhooks", "ledger.lua", purpose="the webhook ledger", timeout_seconds=2.0)

    with pytest.raises(RetryableError, match="the webhook ledger: Redis refused the credentials"):
        await script.run(["castiel:webhook:seen:{r1}:d1"], [120, 86400, "claim"])
    await client.aclose()


async def test_the_start_up_check_takes_a_request_to_sign_in_as_an_answer(cache: EmbeddedRedis) -> None:
    admin = connect(cache.url, timeout_seconds=2.0)
    await admin.config_set("requirepass", "only-for-this-test")
    try:
        assert unreachable(cache.url, token_auth=True) is None
        assert "AuthenticationError" in (unreachable(cache.url) or "")
    finally:
        await admin.execute_command("AUTH", "only-for-this-test")
        await admin.config_set("requirepass", "")
        await admin.aclose()


def test_entra_id_is_chosen_by_setting_and_needs_the_cache_over_tls(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert credential_provider(Settings()) is None
    monkeypatch.setenv("REDIS_AUTH", "entra_id")
    monkeypatch.setenv("REDIS_URL", "redis://castiel.westeurope.redis.azure.net:10000")
    with pytest.raises(ConfigError, match="REDIS_AUTH=entra_id needs REDIS_URL of the cache over TLS"):
        load_settings()

    monkeypatch.setenv("REDIS_URL", "rediss://castiel.westeurope.redis.azure.net:10000")

    assert isinstance(credential_provider(load_settings()), EntraIdCredentialsProvider)
