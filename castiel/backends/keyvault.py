"""The production ``SecretStore``: Azure Key Vault through ``azure.keyvault.secrets.aio.SecretClient``.

One client per process, on the process's shared token credential (``DefaultAzureCredential``: the Function App's
managed identity in Azure, the developer's ``az login`` locally). Names are checked against Key Vault's rules before
any request, so an invalid name fails the same way as with the embedded store.

Azure errors are translated at this boundary by the table ``ERRORS`` (``castiel.error_table``; the SDK has already
retried 429/5xx by its own policy):

=====================================================  =======================================================
``ResourceNotFoundError``, HTTP 404                    ``NotFound``
``ClientAuthenticationError``, HTTP 401/403            ``ConfigError`` (identity or role assignment is wrong)
HTTP 429                                               ``RateLimited`` with the service's ``Retry-After``
HTTP 408, 5xx, other 409, ``ServiceRequestError`` ...  ``RetryableError``
409 ``ObjectIsDeletedButRecoverable``                  ``PermanentError``: the name is held by a soft-deleted
                                                       secret that could not be purged; purge or recover it
any other 4xx                                          ``PermanentError``
=====================================================  =======================================================

``get_properties`` reads the current version with one ``GET``, which carries the value (dropped at once): Key Vault
has no value-free read of a secret's current version, and listing the versions instead costs a request per 25
versions — a token refreshed hourly has thousands — and cannot order two versions made within the same second.

``delete_secret`` deletes every version and waits (the SDK polls) until the deletion is complete. In a vault with
soft-delete (every vault today) the secret then sits in the deleted state, where its name cannot be reused, so it
is purged straight away when the vault permits it (recovery level contains ``Purgeable``, and the identity holds
the purge permission, which *Key Vault Secrets Officer* includes). With purge protection on, or without the
permission, the secret stays soft-deleted until its retention ends: that is logged as a warning, not raised, since
the delete itself succeeded; re-using the name meanwhile fails with the ``PermanentError`` above.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.transport import AsyncHttpTransport
from azure.identity.aio import DefaultAzureCredential
from azure.keyvault.secrets import SecretProperties as AzureSecretProperties
from azure.keyvault.secrets.aio import SecretClient

from castiel.backends.secret_names import check_name, check_secret
from castiel.error_table import SERVER_ERRORS, ErrorTable, Rule
from castiel.errors import CastielError, ConfigError, NotFound, PermanentError, RateLimited, RetryableError
from castiel.ports import SecretProperties, SecretValue
from castiel.settings import Settings

logger = logging.getLogger(__name__)

_HELD_BY_DELETED_OBJECT = "ObjectIsDeletedButRecoverable"


def _held_by_deleted_secret(exc: BaseException) -> bool:
    error = exc.error if isinstance(exc, HttpResponseError) else None
    inner = error.innererror if error is not None else None
    return inner is not None and inner.get("code") == _HELD_BY_DELETED_OBJECT


_ROLE = "(check the identity's Key Vault role assignment)"

ERRORS = ErrorTable(
    "Key Vault",
    [
        Rule((AzureError,), RetryableError, "unreachable"),
        Rule((ClientAuthenticationError,), ConfigError, "authentication failed"),
        Rule((ResourceNotFoundError,), NotFound, "has no such secret"),
        Rule((HttpResponseError,), PermanentError, "answered {status}", statuses=range(400, 500)),
        Rule((HttpResponseError,), ConfigError, f"answered {{status}} {_ROLE}", statuses=(401, 403)),
        Rule((HttpResponseError,), NotFound, "answered {status}", statuses=(404,)),
        Rule((HttpResponseError,), RetryableError, "answered {status}", statuses=(408, 409)),
        Rule(
            (HttpResponseError,),
            PermanentError,
            "answered {status} (purge or recover the deleted secret to reuse its name)",
            statuses=(409,),
            when=_held_by_deleted_secret,
        ),
        Rule((HttpResponseError,), RateLimited, "answered {status}", statuses=(429,)),
        Rule((HttpResponseError,), RetryableError, "answered {status}", statuses=SERVER_ERRORS),
    ],
    default_retry_after=5.0,
    level="keyvault",
)
"""What each Key Vault failure becomes (the most specific matching rule wins)."""


class KeyVaultSecretStore:
    """``SecretStore`` on one Key Vault; build it once per process with ``from_settings`` or ``from_url``."""

    def __init__(self, client: SecretClient, *, owned_credential: AsyncTokenCredential | None = None) -> None:
        self._client = client
        self._owned_credential = owned_credential

    @classmethod
    def from_url(
        cls,
        vault_url: str,
        credential: AsyncTokenCredential | None = None,
        *,
        transport: AsyncHttpTransport[Any, Any] | None = None,
    ) -> KeyVaultSecretStore:
        """A store on ``vault_url`` with ``credential`` (the process's shared one, not closed here), or a
        ``DefaultAzureCredential`` of its own (closed by ``close``). ``transport`` replaces azure-core's HTTP
        transport (tests answer the SDK's requests through it)."""
        own = None
        if credential is None:
            credential = own = DefaultAzureCredential()
        return cls(SecretClient(vault_url, credential, transport=transport), owned_credential=own)

    @classmethod
    def from_settings(cls, settings: Settings, credential: AsyncTokenCredential | None = None) -> KeyVaultSecretStore:
        """A store on ``KEY_VAULT_URL``; ``ConfigError`` when it is not set."""
        if settings.key_vault_url is None:
            raise ConfigError("KEY_VAULT_URL is not set: the Key Vault secret store needs it")
        return cls.from_url(settings.key_vault_url, credential)

    def __repr__(self) -> str:
        return f"KeyVaultSecretStore({self._client.vault_url!r})"

    async def get_secret(self, name: str, version: str | None = None) -> SecretValue:
        """The latest (or given) version's value; raises ``NotFound``."""
        check_name(name)
        with ERRORS.translating(f"get secret {name!r}"):
            secret = await self._client.get_secret(name, version)
        return SecretValue(secret.value or "")

    async def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        expires_on: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SecretProperties:
        """Store a new version; Key Vault assigns its id and creation time."""
        check_secret(name, value, content_type=content_type, expires_on=expires_on, tags=tags)
        with ERRORS.translating(f"set secret {name!r}"):
            secret = await self._client.set_secret(
                name, value, content_type=content_type, expires_on=expires_on, tags=dict(tags) if tags else None
            )
        logger.debug("secret.set name=%s version=%s", name, secret.properties.version)
        return _to_port(secret.properties, name)

    async def get_properties(self, name: str) -> SecretProperties:
        """Metadata of the latest version (one read; see the module docstring); raises ``NotFound``."""
        check_name(name)
        with ERRORS.translating(f"get properties of secret {name!r}"):
            secret = await self._client.get_secret(name)
        return _to_port(secret.properties, name)

    async def list_versions(self, name: str) -> list[SecretProperties]:
        """Every version, oldest first (Key Vault lists them in no order; ties within a second keep its order)."""
        check_name(name)
        with ERRORS.translating(f"list versions of secret {name!r}"):
            listed = self._client.list_properties_of_secret_versions(name)
            versions = [_to_port(properties, name) async for properties in listed]
        if not versions:
            raise NotFound(f"secret {name!r} not found")
        return sorted(versions, key=lambda properties: properties.created_on)

    async def delete_secret(self, name: str) -> None:
        """Delete every version, then purge the soft-deleted secret when the vault permits it (module docstring)."""
        check_name(name)
        with ERRORS.translating(f"delete secret {name!r}"):
            deleted = await self._client.delete_secret(name)
        if deleted.recovery_id is None:
            return  # soft-delete is off: the delete was already final
        recovery_level = deleted.properties.recovery_level or ""
        if "Purgeable" not in recovery_level:
            logger.warning(
                "secret.soft_deleted name=%s recovery_level=%s: purge protection keeps the name until retention ends",
                name,
                recovery_level,
            )
            return
        try:
            with ERRORS.translating(f"purge secret {name!r}"):
                await self._client.purge_deleted_secret(name)
        except CastielError as exc:
            logger.warning("secret.purge_failed name=%s: %s", name, exc)

    async def close(self) -> None:
        """Close the client's connections, and the credential when this store created it."""
        await self._client.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()


def _to_port(properties: AzureSecretProperties, name: str) -> SecretProperties:
    if properties.created_on is None or properties.version is None:
        raise RetryableError(f"Key Vault returned secret {name!r} without a version or creation time")
    return SecretProperties(
        name=properties.name or name,
        version=properties.version,
        created_on=properties.created_on,
        expires_on=properties.expires_on,
        content_type=properties.content_type,
        tags=dict(properties.tags or {}),
    )
