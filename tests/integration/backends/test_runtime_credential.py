"""One token credential per process (issue 16 item 5): the runtime builds one ``DefaultAzureCredential`` and every
Azure client that signs with a token — Cosmos DB, Service Bus, Key Vault — uses it; the runtime closes it once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from castiel.backends import cosmos, keyvault, servicebus
from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.runtime import Runtime, azure_credential
from castiel.settings import Settings, load_settings
from tests.contract.azure_wire import StaticToken


class CountedCredential(StaticToken):
    """Stands in for ``DefaultAzureCredential`` (which would look for an identity); counts the instances made."""

    made: list[CountedCredential] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        CountedCredential.made.append(self)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[CountedCredential]:
    CountedCredential.made = []
    monkeypatch.setattr("azure.identity.aio.DefaultAzureCredential", CountedCredential)
    for module in (cosmos, keyvault, servicebus):
        monkeypatch.setattr(module, "DefaultAzureCredential", CountedCredential)
    return CountedCredential.made


async def test_every_azure_client_shares_the_runtime_s_one_credential(
    data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch, counted: list[CountedCredential]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("COSMOS_ENDPOINT", "https://castiel-test.documents.azure.com:443/")
    monkeypatch.setenv("ServiceBusConnection__fullyQualifiedNamespace", "castiel-test.servicebus.windows.net")
    monkeypatch.setenv("KEY_VAULT_URL", "https://castiel-test.vault.azure.net")

    runtime = Runtime.build(load_settings())
    [credential] = counted
    await runtime.aclose()

    assert runtime.credential is credential
    assert credential.closed == 1  # by the runtime, after the clients; no client closed it


@pytest.mark.parametrize(
    ("settings", "needs_token"),
    [
        ({}, False),
        ({"COSMOS_ENDPOINT": "https://a.documents.azure.com", "COSMOS_KEY": "a2V5"}, False),
        ({"COSMOS_ENDPOINT": "https://a.documents.azure.com"}, True),
        (
            {"ServiceBusConnection": "Endpoint=sb://a.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v"},
            False,
        ),
        ({"ServiceBusConnection__fullyQualifiedNamespace": "a.servicebus.windows.net"}, True),
        ({"KEY_VAULT_URL": "https://a.vault.azure.net"}, True),
    ],
)
def test_a_credential_is_made_only_when_a_backend_signs_with_a_token(
    data_dir: Path, settings: dict[str, str], needs_token: bool, counted: list[CountedCredential]
) -> None:
    made = azure_credential(Settings(**settings))  # type: ignore[arg-type]

    assert (made is not None, len(counted)) == (needs_token, int(needs_token))
