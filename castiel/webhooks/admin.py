"""What an operator does to webhook registrations: add, rotate a secret, remove — each registration owning its secret.

Every registration's signing secret lives in the ``SecretStore`` under a name of its own, made from its tenant and
its own id: ``{tenant}--{registration}--webhook-secret`` (``secret_name``). Adding, rotating or removing one
registration therefore never touches another's secret.

Stores written before that kept one secret per connection (``{tenant}--{connection}--webhook-secret``), shared by
every registration of the connection. Those registrations keep their stored ``secretName`` and keep verifying:

* ``remove`` deletes a secret only when no other registration still names it;
* ``rotate`` first moves a registration that shares its secret onto a name of its own, copying the current value
  there, so the old value keeps verifying for the rotation grace (``castiel.webhooks.verifiers``) and the others
  keep theirs.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from castiel.errors import ConfigError, NotFound
from castiel.models import Connection, Provider, WebhookRegistration
from castiel.ports import SecretStore
from castiel.telemetry import log_event
from castiel.webhooks.registrations import WebhookRegistrations
from castiel.webhooks.signatures import check_verifiable

SECRET_SUFFIX = "webhook-secret"  # noqa: S105 - a secret-name suffix, not a credential
PENDING_SUFFIX = "--pending"
"""Appended to a registration's secret name for the verification tokens Notion sent, pending confirmation."""

# A name part is kept as typed when Key Vault allows it and it cannot be mistaken for the ``--`` between parts;
# otherwise it is replaced by a hash. Two parts of 40 plus the suffixes stay far below Key Vault's 127 characters.
_NAME_PART = re.compile(r"[0-9A-Za-z]+(?:-[0-9A-Za-z]+)*")
_MAX_NAME_PART = 40
_HASHED_PART_DIGITS = 32


def secret_name(tenant_id: str, registration_id: str) -> str:
    """The Key Vault-safe name of a registration's own signing secret.

    Unique per registration because the registration's id is in it (the ids ``webhooks add`` makes are lowercase
    hex, so Key Vault's case-insensitive names cannot collide); a part Key Vault would refuse is hashed.
    """
    return f"{_name_part(tenant_id)}--{_name_part(registration_id)}--{SECRET_SUFFIX}"


def pending_name(name: str) -> str:
    """Where the verification tokens Notion sent for secret ``name`` wait for an operator."""
    return f"{name}{PENDING_SUFFIX}"


def _name_part(value: str) -> str:
    if len(value) <= _MAX_NAME_PART and _NAME_PART.fullmatch(value):
        return value
    return "h" + hashlib.sha256(value.encode()).hexdigest()[:_HASHED_PART_DIGITS]


class WebhookAdmin:
    """Registrations and their secrets, changed together."""

    def __init__(self, registrations: WebhookRegistrations, secrets: SecretStore) -> None:
        self._registrations = registrations
        self._secrets = secrets

    async def add(
        self,
        connection: Connection,
        provider: Provider,
        *,
        secret: str | None,
        settings: dict[str, Any],
        events: Sequence[str] = (),
    ) -> WebhookRegistration:
        """Register an endpoint for ``connection``; ``secret`` (when given) is stored under the new registration's
        own name before the registration exists, so no delivery ever finds it without its secret.

        ``ConfigError`` (and nothing stored) when the secret and settings could never verify a delivery; a Notion
        registration's secret may come later, from Notion's verification request."""
        if secret or provider is not Provider.NOTION:
            check_verifiable(provider, [secret] if secret else [], settings)
        registration_id = uuid.uuid4().hex
        name = secret_name(connection.tenant_id, registration_id) if secret else None
        if name is not None and secret is not None:
            await self._secrets.set_secret(name, secret, tags={"registration": registration_id})
        registration = WebhookRegistration(
            id=registration_id,
            tenant_id=connection.tenant_id,
            provider=provider,
            connection_id=connection.id,
            integration_id=connection.integration_id,
            secret_name=name,
            events=list(events),
            settings=settings,
        )
        try:
            return await self._registrations.add(registration)
        except BaseException:
            if name is not None:
                with suppress(NotFound):
                    await self._secrets.delete_secret(name)
            raise

    async def rotate(self, registration_id: str, secret: str) -> WebhookRegistration:
        """Add ``secret`` as the newest version of the registration's own secret; the previous one keeps
        verifying for the rotation grace. Returns the registration as now stored; ``ConfigError`` (and nothing
        changed) when ``secret`` could never verify."""
        registration = await self._registrations.get(registration_id)
        if registration.secret_name is None:
            raise ConfigError(f"webhook registration {registration_id} verifies without a secret: nothing to rotate")
        check_verifiable(registration.provider, [secret], registration.settings)
        owned, name = await self._owned(registration, registration.secret_name)
        await self._secrets.set_secret(name, secret, tags={"registration": registration.id})
        # Saved even when nothing in it changed: the new etag makes every receiver rebuild this registration's
        # verifier within its revalidation interval, instead of when its cached secrets age out.
        return await self._registrations.save(owned)

    async def remove(self, registration_id: str) -> WebhookRegistration:
        """Delete a registration, then its secrets — unless another registration still names them."""
        registration = await self._registrations.get(registration_id)
        await self._registrations.remove(registration.id)
        # After the delete, so that two removals of registrations sharing a secret cannot both leave it behind.
        if registration.secret_name is not None:
            await self._release(registration.secret_name, registration.id)
        return registration

    async def _release(self, name: str, registration_id: str) -> None:
        sharing = await self._registrations.sharing_secret(name, other_than=registration_id)
        if sharing:
            log_event("webhook.secret_kept", registration_id=registration_id, still_used_by=",".join(sharing))
            return
        for secret in (name, pending_name(name)):
            with suppress(NotFound):
                await self._secrets.delete_secret(secret)

    async def _owned(self, registration: WebhookRegistration, current: str) -> tuple[WebhookRegistration, str]:
        """``registration`` (not yet saved) with a secret name no other registration shares, and that name.

        A shared name's current value is copied to the registration's own name first, so what verified before
        keeps verifying."""
        if not await self._registrations.sharing_secret(current, other_than=registration.id):
            return registration, current
        own = secret_name(registration.tenant_id, registration.id)
        with suppress(NotFound):
            value = await self._secrets.get_secret(current)
            await self._secrets.set_secret(own, value.reveal(), tags={"registration": registration.id})
        log_event("webhook.secret_moved", registration_id=registration.id)
        return registration.model_copy(update={"secret_name": own}), own
