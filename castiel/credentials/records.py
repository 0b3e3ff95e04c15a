"""Where a credential lives: its value in the ``SecretStore``, its metadata in the ``credentials`` container.

The secret's name is derived from the tenant and the credential's own id (``secret_name``), so two credentials never
share one. Every new value is a new secret version, written *before* the metadata that points at it
(``secretVersion``): a reader always gets a complete value, and a writer that loses the metadata race leaves only an
unreferenced version behind. Values are read at the version the metadata names and cached per version (versions
never change), so an adapter's request costs no secret-store round trip.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from castiel.credentials.types import (
    Credential,
    JwtBearer,
    OAuth2AuthorizationCode,
    from_secret_json,
    is_refreshable,
    to_secret_json,
)
from castiel.errors import CastielError, NotFound, PreconditionFailed
from castiel.models import CredentialMetadata, TokenRefreshAudit, stable_id
from castiel.ports import DocumentStore, Query, SecretStore
from castiel.telemetry import log_event

_CONTAINER = CredentialMetadata.container
_CACHE_SIZE = 512
_SLUG_LENGTH = 40


@dataclass(frozen=True, slots=True)
class Current:
    """A credential's metadata and the value it names."""

    metadata: CredentialMetadata
    value: Credential


def secret_name(tenant_id: str, credential_id: str) -> str:
    """A Key Vault-safe name (``[0-9A-Za-z-]``, at most 127 characters) unique to one credential.

    The readable parts help an operator browsing the vault; the digest of the exact pair makes it unique even
    where the readable parts collide (Key Vault compares names case-insensitively).
    """
    digest = stable_id("credential-secret", tenant_id, credential_id)[:16]
    return f"{_slug(tenant_id)}--{_slug(credential_id)}--{digest}"


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", text.lower()).strip("-")[:_SLUG_LENGTH].strip("-") or "x"


def described_by(value: Credential) -> dict[str, Any]:
    """The metadata fields a value determines (never a secret: expiries, scopes, the Salesforce instance URL)."""
    scope = getattr(value, "scope", None)
    fields: dict[str, Any] = {
        "credential_type": value.credential_type,
        "refreshable": is_refreshable(value),
        "expires_at": value.expires_at,
        "scopes": re.split(r"[\s,]+", scope.strip()) if scope else [],
        "refresh_token_expires_at": None,
    }
    if isinstance(value, OAuth2AuthorizationCode):
        fields["refresh_token_expires_at"] = value.refresh_token_expires_at
    if isinstance(value, OAuth2AuthorizationCode | JwtBearer) and value.instance_url:
        fields["instance_url"] = value.instance_url
    return fields


async def list_credentials(store: DocumentStore, tenant_id: str | None = None) -> list[CredentialMetadata]:
    """Every credential (of one tenant), all pages."""
    found: list[CredentialMetadata] = []
    continuation = None
    while True:
        page = await store.query(
            _CONTAINER,
            Query(partition_key=tenant_id, order_by=(("id", "asc"),), limit=500, continuation=continuation),
        )
        found.extend(CredentialMetadata.model_validate(doc) for doc in page.items)
        continuation = page.continuation
        if continuation is None:
            return found


class CredentialRecords:
    """Reads and writes credential metadata and values."""

    def __init__(self, store: DocumentStore, secrets: SecretStore) -> None:
        self._store = store
        self._secrets = secrets
        self._values: OrderedDict[tuple[str, str], Credential] = OrderedDict()

    async def read(self, tenant_id: str, credential_id: str) -> CredentialMetadata:
        """The metadata; ``NotFound`` naming the credential."""
        try:
            doc = await self._store.read(_CONTAINER, credential_id, tenant_id)
        except NotFound:
            raise NotFound(f"credential {credential_id} of tenant {tenant_id} does not exist") from None
        return CredentialMetadata.model_validate(doc)

    async def value(self, metadata: CredentialMetadata) -> Credential:
        """The value at the version the metadata names."""
        return await self.value_at(metadata, metadata.secret_version)

    async def value_at(self, metadata: CredentialMetadata, version: str | None) -> Credential:
        """The value at ``version`` of the credential's secret (None: the newest)."""
        key = (metadata.secret_name, version) if version is not None else None
        cached = self._values.get(key) if key is not None else None
        if key is not None and cached is not None:
            self._values.move_to_end(key)
            return cached
        try:
            secret = await self._secrets.get_secret(metadata.secret_name, version)
        except NotFound:
            raise NotFound(f"the value of credential {metadata.id} is missing from the secret store") from None
        value = from_secret_json(secret.reveal())
        if key is not None:
            self._values[key] = value
            if len(self._values) > _CACHE_SIZE:
                self._values.popitem(last=False)
        return value

    async def create(self, metadata: CredentialMetadata, value: Credential) -> CredentialMetadata:
        """Store a new credential: the value first, then its metadata (``AlreadyExists`` for a taken id)."""
        properties = await self._secrets.set_secret(
            metadata.secret_name, to_secret_json(value), content_type="application/json"
        )
        stored = metadata.model_copy(update={"secret_version": properties.version})
        return CredentialMetadata.model_validate(await self._store.create(_CONTAINER, stored.to_doc()))

    async def commit(
        self, current: CredentialMetadata, value: Credential, changes: dict[str, Any], *, fence: int | None
    ) -> CredentialMetadata:
        """Write ``value`` as the next version of ``current``; ``PreconditionFailed`` if anything wrote since.

        The check before the secret write spares the vault an orphan version in the common race; the etag on the
        metadata replace is what makes it exact. A ``fence`` below the stored one means this writer's lock expired
        and a later holder has written: refused.
        """
        latest = await self.read(current.tenant_id, current.id)
        if latest.etag != current.etag or (fence is not None and latest.fence > fence):
            raise PreconditionFailed(f"credential {current.id} changed since it was read (version {latest.version})")
        properties = await self._secrets.set_secret(
            current.secret_name, to_secret_json(value), content_type="application/json"
        )
        updated = current.model_copy(
            update={
                **described_by(value),
                **changes,
                "secret_version": properties.version,
                "previous_secret_version": current.secret_version,
                "version": current.version + 1,
                "fence": max(current.fence, fence or 0),
            }
        )
        doc = await self._store.replace(_CONTAINER, updated.to_doc(), if_match=current.etag)
        return CredentialMetadata.model_validate(doc)

    async def replace(self, current: CredentialMetadata, changes: dict[str, Any]) -> CredentialMetadata:
        """Change metadata only (status, warnings), etag-conditional."""
        updated = current.model_copy(update=changes)
        doc = await self._store.replace(_CONTAINER, updated.to_doc(), if_match=current.etag)
        return CredentialMetadata.model_validate(doc)

    async def delete(self, metadata: CredentialMetadata) -> None:
        """Remove the value (every version) and the metadata."""
        try:
            await self._secrets.delete_secret(metadata.secret_name)
        except NotFound:
            log_event("credentials.value_already_gone", credential_id=metadata.id)
        await self._store.delete(_CONTAINER, metadata.id, metadata.tenant_id)

    async def audit(self, record: TokenRefreshAudit) -> None:
        """Append an audit record; a failed write is logged, never allowed to undo the refresh it records."""
        try:
            await self._store.create(TokenRefreshAudit.container, record.to_doc())
        except CastielError as exc:
            log_event("credentials.audit_failed", credential_id=record.credential_id, error=str(exc))
