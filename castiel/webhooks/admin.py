"""What an operator does to webhook registrations: add, rotate a secret, remove, and confirm Notion's verification
token — each registration's signing secret a ``webhook_secret`` credential of its own.

``add`` stores the secret through the credential service (its value in the ``SecretStore``, its metadata in
``credentials``, the credential's id the registration's) before the registration that names it (``credentialId``),
so no delivery finds a registration without its secret. ``rotate`` and a Notion ``confirm`` rotate that credential
through ``CredentialVault.rotate`` — exactly what ``castiel credentials rotate`` does — so the grace during which the
previous secret still verifies is defined once, in ``castiel.credentials.webhook_secrets``. ``remove`` deletes the
registration, then its credential.

Stores written before signing secrets were credentials have registrations that name only a secret (``secretName``):
their own, or in the oldest stores their connection's (``{tenant}--{connection}--webhook-secret``), shared by all its
registrations. They keep verifying with it, unchanged, and are migrated lazily, on their next rotation or
confirmation: a credential is made for the registration seeded with its current secret, the registration is switched
to it, the old secret is deleted unless another registration still names it, and then the credential is rotated — so
the current secret keeps verifying for the grace as after any rotation (a version older than the current one, still
in its own grace, is not carried over). ``remove`` deletes a secret, or a credential, only when no other registration
still uses it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from adapters.providers import ADAPTER_TYPES
from castiel.credentials.types import WebhookSecret
from castiel.credentials.vault import CredentialVault
from castiel.errors import AlreadyExists, ConfigError, NotFound, PreconditionFailed
from castiel.models import (
    Connection,
    CredentialMetadata,
    Provider,
    RotationPolicy,
    VerificationState,
    WebhookRegistration,
)
from castiel.ports import SecretStore
from castiel.telemetry import log_event
from castiel.webhooks.notion_verification import Candidate, VerificationCandidates
from castiel.webhooks.registrations import WebhookRegistrations
from castiel.webhooks.verifiers import check_verifiable

_ADAPTER_PROVIDERS = frozenset(adapter.provider for adapter in ADAPTER_TYPES)


class WebhookAdmin:
    """Registrations and their secrets, changed together."""

    def __init__(self, registrations: WebhookRegistrations, secrets: SecretStore, credentials: CredentialVault) -> None:
        self._registrations = registrations
        self._secrets = secrets
        self._credentials = credentials

    async def add(
        self,
        connection: Connection,
        provider: Provider,
        *,
        secret: str | None,
        settings: dict[str, Any],
        events: Sequence[str] = (),
        rotation: RotationPolicy | None = None,
    ) -> WebhookRegistration:
        """Register an endpoint for ``connection``; ``secret`` (when given) becomes the new registration's
        ``webhook_secret`` credential, with ``rotation`` as its policy, before the registration exists.

        ``ConfigError`` (and nothing stored) when the secret and settings could never verify a delivery, or when
        the events could never reach an adapter: ``provider`` must be the connection's, or ``standard`` — a source
        signing in the Standard Webhooks format on the connection's behalf, whose events are its records, read through
        its provider's adapter like any other webhook event (``castiel.sync.ingest``). A Notion
        registration takes no secret: its secret is the verification token Notion sends, once an operator confirms
        it, so it starts with verification open."""
        notion = provider is Provider.NOTION
        if notion and (secret or rotation is not None):
            raise ConfigError(
                "a Notion registration takes no secret nor rotation policy: Notion sends its own verification token,"
                " which an operator then confirms (castiel webhooks confirm)"
            )
        if not notion:
            check_verifiable(provider, [secret] if secret else [], settings)
        if rotation is not None and not secret:
            raise ConfigError(f"this {provider.value} registration verifies without a secret: nothing to rotate")
        _check_source(connection, provider)
        registration_id = uuid.uuid4().hex
        registration = WebhookRegistration(
            id=registration_id,
            tenant_id=connection.tenant_id,
            provider=provider,
            connection_id=connection.id,
            integration_id=connection.integration_id,
            credential_id=registration_id if secret else None,
            events=list(events),
            settings=settings,
            verification=VerificationState.OPEN if notion else None,
        )
        credential = None
        if secret:
            credential = await self._credentials.add_webhook_secret(
                registration, WebhookSecret(secret=secret), rotation=rotation
            )
        try:
            return await self._registrations.add(registration)
        except BaseException:
            if credential is not None:
                with suppress(NotFound):
                    await self._credentials.remove(credential)
            raise

    async def rotate(self, registration_id: str, secret: str) -> CredentialMetadata:
        """Make ``secret`` the registration's signing secret; the previous one keeps verifying for the rotation
        grace. Returns the credential as now stored; ``ConfigError`` (and nothing changed) when ``secret`` could
        never verify."""
        registration = await self._registrations.get(registration_id)
        if registration.provider is Provider.NOTION:
            raise ConfigError(
                f"webhook registration {registration_id} signs with the token Notion sends: re-open its verification"
                " and confirm the new token instead (castiel webhooks reopen)"
            )
        if registration.credential_id is None and registration.secret_name is None:
            raise ConfigError(f"webhook registration {registration_id} verifies without a secret: nothing to rotate")
        check_verifiable(registration.provider, [secret], registration.settings)
        return await self._set_secret(registration, secret)

    async def remove(self, registration_id: str) -> WebhookRegistration:
        """Delete a registration, then its credential or secret — unless another registration still uses it."""
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
        """Make the waiting token with fingerprint ``wanted`` the registration's signing secret — its credential's
        value — and close its verification; any other candidate is discarded. ``NotFound`` if no candidate has that
        fingerprint, ``PreconditionFailed`` if verification is closed. A previously confirmed token keeps verifying
        for the rotation grace, as a rotated secret does."""
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
        await self._set_secret(registration, token)
        current = await self._reread(registration.id)
        confirmed = await self._registrations.save(
            current.model_copy(update={"verification": VerificationState.CONFIRMED})
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

    async def _set_secret(self, registration: WebhookRegistration, secret: str) -> CredentialMetadata:
        """Rotate the registration's credential to ``secret``; one without a credential (stored before, or a Notion
        registration confirming its first token) gets its own first."""
        value = WebhookSecret(secret=secret)
        if registration.credential_id is not None:
            credential = await self._credentials.records.read(registration.tenant_id, registration.credential_id)
            return await self._credentials.rotate(credential, value)
        current = await self._current_secret(registration)
        try:
            credential = await self._credentials.add_webhook_secret(
                registration, WebhookSecret(secret=current or secret)
            )
            holds_new = current is None
        except AlreadyExists:
            # An earlier attempt stopped between making this registration's credential and switching to it.
            credential = await self._credentials.records.read(registration.tenant_id, registration.id)
            holds_new = False
        await self._switch(registration, credential)
        return credential if holds_new else await self._credentials.rotate(credential, value)

    async def _current_secret(self, registration: WebhookRegistration) -> str | None:
        """The value of a registration's secret stored before credentials (None if it has none yet)."""
        if registration.secret_name is None:
            return None
        try:
            return (await self._secrets.get_secret(registration.secret_name)).reveal()
        except NotFound:
            return None

    async def _switch(self, registration: WebhookRegistration, credential: CredentialMetadata) -> None:
        """Point a registration without a credential at ``credential``, then let go of a secret it named before."""
        await self._registrations.save(
            registration.model_copy(update={"credential_id": credential.id, "secret_name": None})
        )
        log_event("webhook.credential_linked", registration_id=registration.id, credential_id=credential.id)
        await self._release_secret_name(registration)

    async def _reread(self, registration_id: str) -> WebhookRegistration:
        """The registration as stored now: a credential rotation re-saves the registrations it signs."""
        self._registrations.forget(registration_id)
        return await self._registrations.get(registration_id)

    async def _release(self, registration: WebhookRegistration) -> None:
        """Delete a removed registration's credential, secret and verification candidates, unless another
        registration still uses them."""
        if registration.credential_id is not None:
            await self._release_credential(registration.tenant_id, registration.credential_id)
        if await self._release_secret_name(registration):
            await VerificationCandidates(self._secrets).discard(registration)

    async def _release_credential(self, tenant_id: str, credential_id: str) -> None:
        try:
            credential = await self._credentials.records.read(tenant_id, credential_id)
        except NotFound:
            return
        try:
            await self._credentials.remove(credential)
        except PreconditionFailed as exc:
            log_event("webhook.credential_kept", credential_id=credential_id, reason=str(exc))

    async def _release_secret_name(self, registration: WebhookRegistration) -> bool:
        """Delete the secret a registration stored before credentials named, unless another registration still
        names it; True when it is gone."""
        name = registration.secret_name
        if name is None:
            return True
        sharing = await self._registrations.sharing_secret(name, other_than=registration.id)
        if sharing:
            log_event("webhook.secret_kept", registration_id=registration.id, still_used_by=",".join(sharing))
            return False
        with suppress(NotFound):
            await self._secrets.delete_secret(name)
        return True


def _check_source(connection: Connection, provider: Provider) -> None:
    """``ConfigError`` unless a ``provider`` registration's events on ``connection`` can reach an adapter: the outbound
    worker reads each event's record through the adapter of the connection's provider."""
    if connection.provider not in _ADAPTER_PROVIDERS:
        raise ConfigError(
            f"connection {connection.id} is a {connection.provider.value} connection: no adapter reads its records,"
            " so none of its webhook events could be synced"
        )
    if provider not in (connection.provider, Provider.STANDARD):
        raise ConfigError(
            f"connection {connection.id} is a {connection.provider.value} connection: its registrations are"
            f" {connection.provider.value}, or standard for a source signing in the Standard Webhooks format, not"
            f" {provider.value}"
        )


def _no_candidate(registration_id: str, wanted: str) -> NotFound:
    return NotFound(
        f"no verification token with fingerprint {wanted!r} waits for webhook registration {registration_id}"
    )
