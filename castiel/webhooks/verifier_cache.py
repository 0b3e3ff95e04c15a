"""Each registration's verifier, built from its secrets once and cached with the registration.

The secrets a registration accepts come from the credential service (``castiel.credentials.webhook_secrets``): its
``webhook_secret`` credential's current value, and the previous one within the rotation grace — or, for a registration
stored before secrets were credentials, the newest version of its secret and the one before it within the grace. A
cached verifier is rebuilt when the registration changes (a rotation re-saves the registrations it signs, and the
registration cache notices within its revalidation interval), when the previous secret's grace ends (from then on it
is refused), and at least every ``SECRETS_TTL_SECONDS`` — so a delivery costs no store or secret-store read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from castiel.clock import Clock, system_clock, to_datetime
from castiel.credentials.webhook_secrets import AcceptedSecrets, WebhookSecrets
from castiel.models import WebhookRegistration
from castiel.webhooks.google_oidc import GoogleSigningKeys
from castiel.webhooks.verifiers import Verifier, build_verifier

SECRETS_TTL_SECONDS = 300.0
"""How long a built verifier is reused before its secrets are read again."""


@dataclass(slots=True)
class _Entry:
    etag: str | None
    verifier: Verifier
    expires_at: float


class VerifierCache:
    """Registration → verifier, rebuilt when the registration changes, a grace period ends or the entry ages out."""

    def __init__(self, secrets: WebhookSecrets, google_keys: GoogleSigningKeys, *, clock: Clock = system_clock) -> None:
        self._secrets = secrets
        self._google_keys = google_keys
        self._clock = clock
        self._cache: dict[str, _Entry] = {}

    async def for_registration(self, registration: WebhookRegistration) -> Verifier:
        """The verifier for ``registration`` (``ConfigError`` when its secrets cannot verify anything)."""
        now = self._clock()
        entry = self._cache.get(registration.id)
        if entry is not None and entry.etag == registration.etag and now < entry.expires_at:
            return entry.verifier
        accepted = await self._accepted(registration, now)
        verifier = build_verifier(
            registration.provider, list(accepted.values), registration.settings, google_keys=self._google_keys
        )
        grace_ends = accepted.until.timestamp() if accepted.until is not None else math.inf
        self._cache[registration.id] = _Entry(registration.etag, verifier, min(now + SECRETS_TTL_SECONDS, grace_ends))
        return verifier

    def forget(self, registration_id: str) -> None:
        """Drop a cached verifier (after its secret rotated or the registration was removed)."""
        self._cache.pop(registration_id, None)

    async def _accepted(self, registration: WebhookRegistration, now: float) -> AcceptedSecrets:
        if registration.credential_id is not None:
            return await self._secrets.of_credential(
                registration.tenant_id, registration.credential_id, to_datetime(now)
            )
        if registration.secret_name is not None:
            return await self._secrets.of_secret_name(registration.secret_name, to_datetime(now))
        return AcceptedSecrets()
