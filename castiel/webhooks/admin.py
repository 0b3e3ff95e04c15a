"""What an operator does to webhook registrations: add, rotate a secret, remove, and confirm Notion's verification
token — each registration owning its secret.

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

from castiel.errors import ConfigError, NotFound, PreconditionFailed
from castiel.models import Connection, Provider, VerificationState, WebhookRegistration
from castiel.ports import SecretStore
from castiel.telemetry import log_event
from castiel.webhooks.notion_verification import Candidate, VerificationCandidates
from castiel.webhooks.registrations import WebhookRegistrations
from castiel.webhooks.signatures import check_verifiable

SECRET_SUFFIX = "webhook-secret"  # noqa: S105 - a secret-name suffix, not a credential

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

        ``ConfigError`` (and nothing stored) when the secret and settings could never verify a delivery. A Notion
        registration takes no secret: its secret is the verification token Notion sends, once an operator confirms
        it, so it starts with verification open."""
        registration_id = uuid.uuid4().hex
        notion = provider is Provider.NOTION
        if notion and secret:
            raise ConfigError(
                "a Notion registration takes no secret: Notion sends its own verification token, which an operator"
                " then confirms (castiel webhooks confirm)"
            )
        if not notion:
            check_verifiable(provider, [secret] if secret else [], settings)
        name = secret_name(connection.tenant_id, registration_id) if secret or notion else None
        if name is not None and secret:
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
            verification=VerificationState.OPEN if notion else None,
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
        if registration.provider is Provider.NOTION:
            raise ConfigError(
                f"webhook registration {registration_id} signs with the token Notion sends: re-open its verification"
                " and confirm the new token instead (castiel webhooks reopen)"
            )
        if registration.secret_name is None:
            raise ConfigError(f"webhook registration {registration_id} verifies without a secret: nothing to rotate")
        check_verifiable(registration.provider, [secret], registration.settings)
        owned, name = await self._owned(registration)
        await self._secrets.set_secret(name, secret, tags={"registration": registration.id})
        # Saved even when nothing in it changed: the new etag makes every receiver rebuild this registration's
        # verifier within its revalidation interval, instead of when its cached secrets age out.
        return await self._registrations.save(owned)

    async def remove(self, registration_id: str) -> WebhookRegistration:
        """Delete a registration, then its secrets — unless another registration still names them."""
        registration = await self._registrations.get(registration_id)
        await self._registrations.remove(registration.id)
        # After the delete, so that two removals of registrations sharing a secret cannot both leave it behind.
        await self._release(registration)
        return registration

    async def candidates(self, registration_id: str) -> list[Candidate]:
        """The verification tokens waiting for an operator's confirmation, oldest first."""
        return await VerificationCandidates(self._secrets).waiting(await self._notion(registration_id))

    async def reveal(self, registration_id: str, wanted: str) -> str:
        """The waiting token with fingerprint ``wanted``, for the operator to paste into Notion's Verify dialog
        (Notion's own flow needs the value); ``NotFound`` if none. Logged, without the value."""
        token = await VerificationCandidates(self._secrets).token(await self._notion(registration_id), wanted)
        if token is None:
            raise _no_candidate(registration_id, wanted)
        log_event("webhook.verification_token_revealed", registration_id=registration_id, fingerprint=wanted.lower())
        return token

    async def confirm(self, registration_id: str, wanted: str) -> WebhookRegistration:
        """Make the waiting token with fingerprint ``wanted`` the registration's signing secret and close its
        verification; any other candidate is discarded. ``NotFound`` if no candidate has that fingerprint,
        ``PreconditionFailed`` if verification is closed. A previously confirmed token keeps verifying for the
        rotation grace, as a rotated secret does."""
        registration = await self._notion(registration_id)
        if registration.verification is not VerificationState.OPEN:
            raise PreconditionFailed(
                f"verification of webhook registration {registration_id} is closed: re-open it first"
                f" (castiel webhooks reopen {registration_id})"
            )
        candidates = VerificationCandidates(self._secrets)
        token = await candidates.token(registration, wanted)
        if token is None:
            raise _no_candidate(registration_id, wanted)
        owned, name = await self._owned(registration)
        await self._secrets.set_secret(name, token, tags={"registration": registration.id})
        confirmed = await self._registrations.save(
            owned.model_copy(update={"verification": VerificationState.CONFIRMED})
        )
        await candidates.discard(registration)
        return confirmed

    async def reopen(self, registration_id: str) -> WebhookRegistration:
        """Take verification tokens again (Notion sends a new one when a subscription is re-verified), discarding
        any still waiting; the confirmed token keeps verifying until a new one is confirmed."""
        registration = await self._notion(registration_id)
        await VerificationCandidates(self._secrets).discard(registration)
        return await self._registrations.save(registration.model_copy(update={"verification": VerificationState.OPEN}))

    async def _notion(self, registration_id: str) -> WebhookRegistration:
        registration = await self._registrations.get(registration_id)
        if registration.provider is not Provider.NOTION:
            raise ConfigError(
                f"webhook registration {registration_id} is a {registration.provider.value} registration:"
                " only Notion registrations are verified by a token"
            )
        return registration

    async def _release(self, registration: WebhookRegistration) -> None:
        """Delete a removed registration's secret and verification candidates, unless another still uses them."""
        name = registration.secret_name
        if name is not None:
            sharing = await self._registrations.sharing_secret(name, other_than=registration.id)
            if sharing:
                log_event("webhook.secret_kept", registration_id=registration.id, still_used_by=",".join(sharing))
                return
            with suppress(NotFound):
                await self._secrets.delete_secret(name)
        await VerificationCandidates(self._secrets).discard(registration)

    async def _owned(self, registration: WebhookRegistration) -> tuple[WebhookRegistration, str]:
        """``registration`` (not yet saved) with a secret name no other registration shares, and that name.

        A shared name's current value is copied to the registration's own name first, so what verified before
        keeps verifying."""
        current = registration.secret_name
        if current is not None and not await self._registrations.sharing_secret(current, other_than=registration.id):
            return registration, current
        own = secret_name(registration.tenant_id, registration.id)
        if current is not None:
            with suppress(NotFound):
                value = await self._secrets.get_secret(current)
                await self._secrets.set_secret(own, value.reveal(), tags={"registration": registration.id})
            log_event("webhook.secret_moved", registration_id=registration.id)
        return registration.model_copy(update={"secret_name": own}), own


def _no_candidate(registration_id: str, wanted: str) -> NotFound:
    return NotFound(
        f"no verification token with fingerprint {wanted!r} waits for webhook registration {registration_id}"
    )
