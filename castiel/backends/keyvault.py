"""The production ``SecretStore``: Azure Key Vault through ``azure.keyvault.secrets.aio.SecretClient``.

One client and one credential (``DefaultAzureCredential``: the Function App's managed identity in Azure, the
developer's ``az login`` locally) are created per process and reused by every call. Names are checked against
Key Vault's rules before any request, so an invalid name fails the same way as with the embedded store.

Azure errors are translated at this boundary (the SDK has already retried 429/5xx by its own policy):

=====================================================  =======================================================
``ResourceNotFoundError``                              ``NotFound``
``ClientAuthenticationError``, HTTP 401/403            ``ConfigError`` (identity or role assignment is wrong)
HTTP 429                                               ``RateLimited`` with the service's ``Retry-After``
HTTP 408, 5xx, other 409, ``ServiceRequestError`` ...  ``RetryableError``
409 ``ObjectIsDeletedButRecoverable``                  ``PermanentError``: the name is held by a soft-deleted
                                                       secret that could not be purged; purge or recover it
any other 4xx                                          ``PermanentError``
=====================================================  =======================================================

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

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.identity.aio import DefaultAzureCredential
from azure.keyvault.secrets import SecretProperties as AzureSecretProperties
from azure.keyvault.secrets.aio import SecretClient

from castiel.backends.secret_names import check_name, check_secret
from castiel.errors import CastielError, ConfigError, NotFound, PermanentError, RateLimited, RetryableError
from castiel.ports import SecretProperties, SecretValue
from castiel.settings import Settings

logger = logging.getLogger(__name__)

_DEFAULT_RETRY_AFTER = 5.0
_HELD_BY_DELETED_OBJECT = "ObjectIsDeletedButRecoverable"


class KeyVaultSecretStore:
    """``SecretStore`` on one Key Vault; build it once per process with ``from_settings`` or ``from_url``."""

    def __init__(self, client: SecretClient, *, owned_credential: AsyncTokenCredential | None = None) -> None:
        self._client = client
        self._owned_credential = owned_credential

    @classmethod
    def from_url(cls, vault_url: str) -> KeyVaultSecretStore:
        """A store on ``vault_url`` authenticated by ``DefaultAzureCredential``, both closed by ``close``."""
        credential = DefaultAzureCredential()
        return cls(SecretClient(vault_url, credential), owned_credential=credential)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyVaultSecretStore:
        """A store on ``KEY_VAULT_URL``; ``ConfigError`` when it is not set."""
        if settings.key_vault_url is None:
            raise ConfigError("KEY_VAULT_URL is not set: the Key Vault secret store needs it")
        return cls.from_url(settings.key_vault_url)

    def __repr__(self) -> str:
        return f"KeyVaultSecretStore({self._client.vault_url!r})"

    async def get_secret(self, name: str, version: str | None = None) -> SecretValue:
        """The latest (or given) version's value; raises ``NotFound``."""
        check_name(name)
        try:
            secret = await self._client.get_secret(name, version)
        except AzureError as exc:
            raise translate_error(exc, f"get secret {name!r}") from exc
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
        try:
            secret = await self._client.set_secret(
                name, value, content_type=content_type, expires_on=expires_on, tags=dict(tags) if tags else None
            )
        except AzureError as exc:
            raise translate_error(exc, f"set secret {name!r}") from exc
        logger.debug("secret.set name=%s version=%s", name, secret.properties.version)
        return _to_port(secret.properties, name)

    async def get_properties(self, name: str) -> SecretProperties:
        """Metadata of the latest version; raises ``NotFound``."""
        check_name(name)
        try:
            secret = await self._client.get_secret(name)
        except AzureError as exc:
            raise translate_error(exc, f"get secret {name!r}") from exc
        return _to_port(secret.properties, name)

    async def list_versions(self, name: str) -> list[SecretProperties]:
        """Every version, oldest first (Key Vault lists them in no order; ties within a second keep its order)."""
        check_name(name)
        try:
            versions = [
                _to_port(properties, name) async for properties in self._client.list_properties_of_secret_versions(name)
            ]
        except AzureError as exc:
            raise translate_error(exc, f"list versions of secret {name!r}") from exc
        if not versions:
            raise NotFound(f"secret {name!r} not found")
        return sorted(versions, key=lambda properties: properties.created_on)

    async def delete_secret(self, name: str) -> None:
        """Delete every version, then purge the soft-deleted secret when the vault permits it (module docstring)."""
        check_name(name)
        try:
            deleted = await self._client.delete_secret(name)
        except AzureError as exc:
            raise translate_error(exc, f"delete secret {name!r}") from exc
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
            await self._client.purge_deleted_secret(name)
        except AzureError as exc:
            logger.warning("secret.purge_failed name=%s: %s", name, translate_error(exc, f"purge secret {name!r}"))

    async def close(self) -> None:
        """Close the client's connections, and the credential when this store created it."""
        await self._client.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()


def translate_error(exc: AzureError, action: str) -> CastielError:
    """The ``castiel.errors`` type for an Azure SDK error raised while doing ``action`` (table in the docstring)."""
    if isinstance(exc, ResourceNotFoundError):
        return NotFound(f"{action}: not found")
    if isinstance(exc, ClientAuthenticationError):
        return ConfigError(f"{action}: Key Vault authentication failed: {_describe(exc)}")
    if not isinstance(exc, HttpResponseError) or exc.status_code is None:
        return RetryableError(f"{action}: Key Vault unreachable: {_describe(exc)}")
    status = exc.status_code
    detail = f"{action}: Key Vault answered {status}: {_describe(exc)}"
    if status in (401, 403):
        return ConfigError(f"{detail} (check the identity's Key Vault role assignment)")
    if status == 429:
        return RateLimited(detail, retry_after=_retry_after(exc), level="keyvault")
    if status == 409 and _inner_code(exc) == _HELD_BY_DELETED_OBJECT:
        return PermanentError(f"{detail} (purge or recover the deleted secret to reuse its name)")
    if status in (408, 409) or status >= 500:
        return RetryableError(detail)
    return PermanentError(detail)


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


def _describe(exc: AzureError) -> str:
    """The first line of the SDK's message: the service's code and message, never a request body."""
    error = exc.error if isinstance(exc, HttpResponseError) else None
    if error is not None and (error.code or error.message):
        return f"{error.code}: {error.message}"
    return str(exc.message).splitlines()[0] if exc.message else type(exc).__name__


def _inner_code(exc: HttpResponseError) -> str | None:
    inner = exc.error.innererror if exc.error is not None else None
    code = inner.get("code") if inner else None
    return code if isinstance(code, str) else None


def _retry_after(exc: HttpResponseError) -> float:
    headers = getattr(exc.response, "headers", None)
    header = headers.get("Retry-After") if headers is not None else None
    try:
        return float(header) if header else _DEFAULT_RETRY_AFTER
    except ValueError:
        return _DEFAULT_RETRY_AFTER
