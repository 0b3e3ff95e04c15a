"""Each registration's verifier, built from its secrets once and cached with the registration.

Secrets come from the ``SecretStore`` under the registration's ``secretName``. Rotation: the newest version is
always accepted, and the one before it for ``ROTATION_GRACE`` after the newer was set, so a provider can switch
secrets without a window of rejected deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import NotFound
from castiel.models import WebhookRegistration
from castiel.ports import SecretStore
from castiel.webhooks.google_oidc import GoogleSigningKeys
from castiel.webhooks.signatures import Verifier, build_verifier

ROTATION_GRACE = timedelta(days=7)


@dataclass(slots=True)
class _Entry:
    etag: str | None
    verifier: Verifier


class Verifiers:
    """Registration → verifier, rebuilt when the registration document changes."""

    def __init__(self, secrets: SecretStore, google_keys: GoogleSigningKeys, *, clock: Clock = system_clock) -> None:
        self._secrets = secrets
        self._google_keys = google_keys
        self._clock = clock
        self._cache: dict[str, _Entry] = {}

    async def for_registration(self, registration: WebhookRegistration) -> Verifier:
        """The verifier for ``registration`` (``ConfigError`` when its secrets cannot verify anything)."""
        entry = self._cache.get(registration.id)
        if entry is not None and entry.etag == registration.etag:
            return entry.verifier
        verifier = build_verifier(
            registration.provider,
            await self._secret_values(registration.secret_name),
            registration.settings,
            google_keys=self._google_keys,
        )
        self._cache[registration.id] = _Entry(registration.etag, verifier)
        return verifier

    def forget(self, registration_id: str) -> None:
        """Drop a cached verifier (after its secret rotated or the registration was removed)."""
        self._cache.pop(registration_id, None)

    async def _secret_values(self, name: str | None) -> list[str]:
        if name is None:
            return []
        try:
            versions = await self._secrets.list_versions(name)
        except NotFound:
            return []
        newest_first = sorted(versions, key=lambda props: props.created_on, reverse=True)
        values = [(await self._secrets.get_secret(name, newest_first[0].version)).reveal()] if newest_first else []
        if len(newest_first) > 1 and now_utc(self._clock) - newest_first[0].created_on < ROTATION_GRACE:
            values.append((await self._secrets.get_secret(name, newest_first[1].version)).reveal())
        return values
