"""Notion's verification tokens, kept as candidates until an operator confirms the one Notion sent.

Notion proves a subscription by POSTing ``{"verification_token": …}`` to the endpoint, unsigned: the token is the
secret Notion then signs every event with. Anyone who knows the URL can POST such a body, so no token is trusted
because it arrived. While a registration's verification is ``open``, every token that arrives is kept as a
*candidate*, its value only in the ``SecretStore`` (one version of ``<secretName>--pending`` per candidate, tagged
with the request's source address; the version's creation time is its arrival), never in a document or a log line.
An operator lists them (``castiel webhooks confirm ID``), reveals the one that arrived when Notion sent it
(``--reveal``) to paste into Notion's Verify dialog — Notion accepts only the token it sent, so a planted one fails
there — and promotes that one (``--fingerprint``); that closes verification, and later tokens are refused until
the operator re-opens it (``castiel webhooks reopen ID``).

A fingerprint is the first 12 hex digits of the token's SHA-256: enough to tell the candidates of one registration
apart, and nothing a reader could sign with. Compute it from a token you hold with
``printf %s "$TOKEN" | sha256sum | cut -c1-12``.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

from castiel.errors import NotFound
from castiel.models import WebhookRegistration
from castiel.ports import SecretProperties, SecretStore

FINGERPRINT_DIGITS = 12
MAX_CANDIDATES = 20
"""Candidates kept at most per registration: a flood of planted tokens fills this, not the secret store."""
MAX_TOKEN_LENGTH = 512
"""Notion's tokens are ``secret_`` and a few dozen characters; anything much longer is not one."""
PENDING_SUFFIX = "--pending"

_SOURCE_TAG = "source"
_MAX_SOURCE_LENGTH = 100


@dataclass(frozen=True, slots=True)
class Candidate:
    """A verification token waiting for an operator, shown by its fingerprint (never its value)."""

    fingerprint: str
    received_at: datetime
    source: str | None
    version: str


def fingerprint(token: str) -> str:
    """What an operator compares: the first ``FINGERPRINT_DIGITS`` hex digits of the token's SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:FINGERPRINT_DIGITS]


def implausible(token: str) -> str | None:
    """Why ``token`` cannot be a Notion verification token, or None if it could be."""
    if len(token) > MAX_TOKEN_LENGTH:
        return f"verification_token is longer than {MAX_TOKEN_LENGTH} characters"
    if not (token.isascii() and token.isprintable()) or " " in token:
        return "verification_token is not printable ASCII without spaces"
    return None


def candidates_name(registration: WebhookRegistration) -> str:
    """The secret whose versions are ``registration``'s candidates (Notion registrations stored before each had a
    secret name kept theirs under the registration id)."""
    return f"{registration.secret_name or registration.id}{PENDING_SUFFIX}"


class VerificationCandidates:
    """A registration's candidates in the ``SecretStore``: offered by the receiver, listed and taken by an operator."""

    def __init__(self, secrets: SecretStore) -> None:
        self._secrets = secrets

    async def offer(self, registration: WebhookRegistration, token: str, *, source: str | None) -> bool:
        """Keep ``token`` as a candidate; False, and nothing kept, when ``MAX_CANDIDATES`` already wait."""
        name = candidates_name(registration)
        if len(await self._versions(name)) >= MAX_CANDIDATES:
            return False
        tags = {"registration": registration.id}
        if source:
            tags[_SOURCE_TAG] = source[:_MAX_SOURCE_LENGTH]
        await self._secrets.set_secret(name, token, tags=tags)
        return True

    async def waiting(self, registration: WebhookRegistration) -> list[Candidate]:
        """The candidates, oldest first."""
        name = candidates_name(registration)
        candidates = []
        for version in await self._versions(name):
            value = await self._secrets.get_secret(name, version.version)
            source = version.tags.get(_SOURCE_TAG) or None
            candidates.append(Candidate(fingerprint(value.reveal()), version.created_on, source, version.version))
        return candidates

    async def token(self, registration: WebhookRegistration, wanted: str) -> str | None:
        """The token of the candidate whose fingerprint is ``wanted`` (case-insensitive), or None."""
        name = candidates_name(registration)
        for candidate in reversed(await self.waiting(registration)):
            if candidate.fingerprint == wanted.strip().lower():
                return (await self._secrets.get_secret(name, candidate.version)).reveal()
        return None

    async def discard(self, registration: WebhookRegistration) -> None:
        """Forget every candidate."""
        with suppress(NotFound):
            await self._secrets.delete_secret(candidates_name(registration))

    async def _versions(self, name: str) -> list[SecretProperties]:
        try:
            return await self._secrets.list_versions(name)
        except NotFound:
            return []
