"""Each registration's verifier, built from its secrets once and cached with the registration.

Secrets come from the ``SecretStore`` under the registration's ``secretName``. Rotation: the newest version is
always accepted, and the one before it for ``ROTATION_GRACE`` after the newer was set, so a provider can switch
secrets without a window of rejected deliveries. A cached verifier is rebuilt when the registration changes, when the
previous secret's grace ends (from then on it is refused), and at least every ``SECRETS_TTL_SECONDS`` so that a
rotation made by another process (the CLI) is picked up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from castiel.clock import Clock, system_clock
from castiel.errors import NotFound
from castiel.models import WebhookRegistration
from castiel.ports import SecretStore
from castiel.webhooks.google_oidc import GoogleSigningKeys
from castiel.webhooks.signatures import Verifier, build_verifier

ROTATION_GRACE = timedelta(days=7)
SECRETS_TTL_SECONDS = 300.0
"""How long a built verifier is reused before the secret store is read again."""


@dataclass(slots=True)
class _Entry:
    etag: str | None
    verifier: Verifier
    expires_at: float


class Verifiers:
    """Registration → verifier, rebuilt when the registration changes, a grace period ends or the entry ages out."""

    def __init__(self, secrets: SecretStore, google_keys: GoogleSigningKeys, *, clock: Clock = system_clock) -> None:
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
        secrets, grace_ends = await self._secret_values(registration.secret_name, now)
        verifier = build_verifier(registration.provider, secrets, registration.settings, google_keys=self._google_keys)
        self._cache[registration.id] = _Entry(registration.etag, verifier, min(now + SECRETS_TTL_SECONDS, grace_ends))
        return verifier

    def forget(self, registration_id: str) -> None:
        """Drop a cached verifier (after its secret rotated or the registration was removed)."""
        self._cache.pop(registration_id, None)

    async def _secret_values(self, name: str | None, now: float) -> tuple[list[str], float]:
        """The accepted secrets, newest first, and when the previous one's grace ends (infinity if none is kept)."""
        if name is None:
            return [], math.inf
        try:
            versions = await self._secrets.list_versions(name)
        except NotFound:
            return [], math.inf
        if not versions:
            return [], math.inf
        # A stable sort keeps the store's oldest-first order between versions created in the same clock tick.
        newest, *older = reversed(sorted(versions, key=lambda props: props.created_on))
        values = [(await self._secrets.get_secret(name, newest.version)).reveal()]
        grace_ends = (newest.created_on + ROTATION_GRACE).timestamp()
        if not older or now >= grace_ends:
            return values, math.inf
        values.append((await self._secrets.get_secret(name, older[0].version)).reveal())
        return values, grace_ends
