"""The Key Vault store through the real ``azure.keyvault.secrets.aio`` client, answered by the in-process vault of
``keyvault_wire``: the requests the SDK builds (challenge auth, bodies, deletes then purges) and the service's
errors as Castiel errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import orjson
import pytest

from castiel.backends.keyvault import KeyVaultSecretStore
from castiel.errors import ConfigError, NotFound, PermanentError, RateLimited
from tests.contract.azure_wire import StaticToken
from tests.contract.keyvault_wire import VAULT_URL, KeyVault


@pytest.fixture
def vault() -> KeyVault:
    return KeyVault()


@pytest.fixture
def credential() -> StaticToken:
    return StaticToken()


@pytest.fixture
async def store(vault: KeyVault, credential: StaticToken) -> AsyncIterator[KeyVaultSecretStore]:
    secrets = KeyVaultSecretStore.from_url(VAULT_URL, credential, transport=vault)  # type: ignore[arg-type]
    yield secrets
    await secrets.close()


def calls(vault: KeyVault) -> list[tuple[str, str]]:
    """(method, path) of every request that carried the token."""
    return [(r.method, urlsplit(r.url).path) for r in vault.requests if "Authorization" in r.headers]


async def test_the_first_request_answers_the_vault_s_challenge_then_carries_the_token(
    vault: KeyVault, credential: StaticToken
) -> None:
    # The SDK remembers a vault's challenge for the process: a host no other test used is asked afresh.
    fresh = f"https://castiel-{uuid.uuid4().hex[:12]}.vault.azure.net"
    store = KeyVaultSecretStore.from_url(fresh, credential, transport=vault)  # type: ignore[arg-type]

    await store.set_secret("t1--c1--api-key", "s3cret")
    await store.close()

    unauthenticated, authenticated = vault.requests
    assert "Authorization" not in unauthenticated.headers
    assert authenticated.headers["Authorization"] == "Bearer entra-token"
    assert credential.scopes == ["https://vault.azure.net/.default"]
    assert credential.closed == 0  # the process's credential: the store does not close it on its own


async def test_set_secret_puts_value_content_type_expiry_and_tags(store: KeyVaultSecretStore, vault: KeyVault) -> None:
    expires = datetime(2031, 5, 17, 8, 30, tzinfo=UTC)

    written = await store.set_secret(
        "api-key", "s3cret", content_type="text/plain", expires_on=expires, tags={"t": "1"}
    )

    put = vault.requests[-1]
    assert (put.method, urlsplit(put.url).path) == ("PUT", "/secrets/api-key")
    assert orjson.loads(put.content) == {
        "value": "s3cret",
        "contentType": "text/plain",
        "attributes": {"exp": int(expires.timestamp())},
        "tags": {"t": "1"},
    }
    assert (written.version, written.created_on) == (vault.secrets["api-key"].versions[0]["id"].rsplit("/", 1)[1],
                                                      datetime.fromtimestamp(1_700_000_000, UTC))  # fmt: skip


THROTTLED = {"error": {"code": "Throttled", "message": "Request was not processed because too many requests"}}


async def test_a_429_is_retried_after_retry_after_then_rate_limited_with_it(
    store: KeyVaultSecretStore, vault: KeyVault
) -> None:
    await store.set_secret("api-key", "s3cret")
    vault.fail(429, THROTTLED, headers={"Retry-After": "7"}, times=99, when=lambda r: r.method == "GET")

    with pytest.raises(RateLimited, match="get secret 'api-key': Key Vault answered 429") as raised:
        await store.get_secret("api-key")

    assert (raised.value.retry_after, raised.value.level) == (7.0, "keyvault")
    assert vault.slept  # azure-core waited as the vault asked, through the transport
    assert set(vault.slept) == {7.0}


async def test_a_forbidden_identity_is_a_config_error_naming_the_role(
    store: KeyVaultSecretStore, vault: KeyVault
) -> None:
    forbidden = {
        "error": {"code": "Forbidden", "message": "Caller is not authorized", "innererror": {"code": "ForbiddenByRbac"}}
    }
    vault.fail(403, forbidden, when=lambda r: "Authorization" in r.headers)

    with pytest.raises(ConfigError, match="role assignment"):
        await store.get_secret("api-key")


async def test_delete_soft_deletes_then_purges_every_version(store: KeyVaultSecretStore, vault: KeyVault) -> None:
    await store.set_secret("api-key", "one")
    await store.set_secret("api-key", "two")
    vault.requests.clear()

    await store.delete_secret("api-key")

    assert calls(vault) == [
        ("DELETE", "/secrets/api-key"),
        ("GET", "/deletedsecrets/api-key"),
        ("DELETE", "/deletedsecrets/api-key"),
    ]
    assert vault.deleted == {}
    with pytest.raises(NotFound):
        await store.get_secret("api-key")
    assert (await store.set_secret("api-key", "again")).name == "api-key"


async def test_under_purge_protection_the_name_stays_held_and_reuse_says_why(
    credential: StaticToken, caplog: pytest.LogCaptureFixture
) -> None:
    vault = KeyVault(purge_protection=True)
    store = KeyVaultSecretStore.from_url(VAULT_URL, credential, transport=vault)  # type: ignore[arg-type]
    await store.set_secret("api-key", "one")

    with caplog.at_level(logging.WARNING):
        await store.delete_secret("api-key")
    with pytest.raises(PermanentError, match="purge or recover the deleted secret"):
        await store.set_secret("api-key", "two")
    await store.close()

    assert "secret.soft_deleted" in caplog.text
    assert ("DELETE", "/deletedsecrets/api-key") not in calls(vault)
