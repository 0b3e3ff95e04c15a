"""Webhook signing secrets as ``webhook_secret`` credentials (issue 11 item 7): the secrets a registration accepts, and
what rotating one must check and announce.

A registration made by ``castiel webhooks add`` names its credential (``credentialId``): the value lives in the secret
store, the metadata in ``credentials``, like every credential's. A rotation — ``webhooks rotate`` and ``credentials
rotate`` alike run ``CredentialVault.rotate`` — stores the new value as the next version and remembers the one it
replaced (``previousSecretVersion``): both verify until ``ROTATION_GRACE`` after ``rotatedAt``, then only the new one.
It is refused, changing nothing, when the new secret could never verify a delivery to a registration it signs
(``check_verifies``), and it re-saves those registrations afterwards (``republish``): their new etag makes every
receiver's registration cache drop them within its revalidation interval, and the verifier rebuilt then reads the new
secret. ``WebhookSecrets`` is what a receiver's verifiers read.

Registrations stored before signing secrets were credentials name only a secret (``secretName``, shared by a
connection's registrations in the oldest stores). ``WebhookSecrets.of_secret_name`` reads those as the receiver always
did: the newest version, and the one before it until ``ROTATION_GRACE`` after the newest was set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from castiel.credentials.records import CredentialRecords
from castiel.credentials.types import Credential, CredentialType, WebhookSecret
from castiel.errors import ConfigError, NotFound, PreconditionFailed
from castiel.models import CredentialMetadata, WebhookRegistration
from castiel.ports import DocumentStore, Filter, Query, SecretStore
from castiel.telemetry import log_event
from castiel.webhooks.verifiers import check_verifiable

ROTATION_GRACE = timedelta(days=7)
"""How long a webhook secret's previous value keeps verifying after a rotation (the only definition of it)."""


@dataclass(frozen=True, slots=True)
class AcceptedSecrets:
    """The secrets a delivery may be signed with, newest first, and ``until`` when that holds: the end of the
    previous secret's grace (None: until the next rotation)."""

    values: tuple[str, ...] = ()
    until: datetime | None = None


def grace_end(replaced_at: datetime | None, now: datetime) -> datetime | None:
    """When a secret replaced at ``replaced_at`` stops verifying, if it still verifies at ``now``; else None."""
    if replaced_at is None:
        return None
    ends = replaced_at + ROTATION_GRACE
    return ends if now < ends else None


class WebhookSecrets:
    """Reads the secrets a webhook registration accepts now (no locks, no writes: what a receiver needs)."""

    def __init__(self, store: DocumentStore, secrets: SecretStore) -> None:
        self._records = CredentialRecords(store, secrets)
        self._secrets = secrets

    async def of_credential(self, tenant_id: str, credential_id: str, now: datetime) -> AcceptedSecrets:
        """A credential's current secret, and its previous one within the grace; none when the credential is gone
        (the registration then cannot verify: ours to fix). ``ConfigError`` for a credential of another type."""
        try:
            credential = await self._records.read(tenant_id, credential_id)
        except NotFound:
            return AcceptedSecrets()
        if credential.credential_type != CredentialType.WEBHOOK_SECRET:
            raise ConfigError(f"credential {credential_id} is a {credential.credential_type}, not a webhook_secret")
        previous = credential.previous_secret_version
        until = grace_end(credential.rotated_at, now) if previous is not None else None
        versions = [credential.secret_version, *([previous] if until is not None else [])]
        try:
            values = tuple([_secret(await self._records.value_at(credential, version)) for version in versions])
        except NotFound:
            raise ConfigError(f"the secret of credential {credential_id} is missing from the secret store") from None
        return AcceptedSecrets(values, until)

    async def of_secret_name(self, name: str, now: datetime) -> AcceptedSecrets:
        """A secret stored before registrations had credentials: its newest version, and the one before it within
        the grace after the newest was set; none when it is gone."""
        try:
            versions = await self._secrets.list_versions(name)
        except NotFound:
            return AcceptedSecrets()
        if not versions:
            return AcceptedSecrets()
        # A stable sort keeps the store's oldest-first order between versions created in the same clock tick.
        newest, *older = reversed(sorted(versions, key=lambda props: props.created_on))
        values = [(await self._secrets.get_secret(name, newest.version)).reveal()]
        until = grace_end(newest.created_on, now) if older else None
        if older and until is not None:
            values.append((await self._secrets.get_secret(name, older[0].version)).reveal())
        return AcceptedSecrets(tuple(values), until)


def _secret(value: Credential) -> str:
    if not isinstance(value, WebhookSecret):
        raise ConfigError("a webhook registration's credential holds no webhook_secret value")
    return value.secret.get_secret_value()


async def registrations_signed_by(store: DocumentStore, credential: CredentialMetadata) -> list[WebhookRegistration]:
    """The webhook registrations that verify deliveries with ``credential`` (none unless it is a webhook secret)."""
    if credential.credential_type != CredentialType.WEBHOOK_SECRET:
        return []
    page = await store.query(
        WebhookRegistration.container,
        Query(filters=(Filter("credentialId", "==", credential.id),), partition_key=credential.tenant_id),
    )
    return [WebhookRegistration.model_validate(doc) for doc in page.items]


def check_verifies(registrations: Sequence[WebhookRegistration], value: Credential) -> None:
    """``ConfigError`` naming the registration when ``value`` could never verify a delivery to one of them (a
    Standard Webhooks secret that is not ``whsec_`` + base64 …): the check ``webhooks add`` applies."""
    for registration in registrations:
        try:
            check_verifiable(registration.provider, [_secret(value)], registration.settings)
        except ConfigError as exc:
            raise ConfigError(f"webhook registration {registration.id} could not verify with it: {exc}") from None


async def republish(store: DocumentStore, registrations: Sequence[WebhookRegistration]) -> None:
    """Re-save each registration unchanged: its new etag makes every receiver's cache drop it within the cache's
    revalidation interval and rebuild its verifier from the rotated secret. One changed or removed meanwhile is left
    alone: that change is itself noticed the same way."""
    for registration in registrations:
        try:
            await store.replace(WebhookRegistration.container, registration.to_doc(), if_match=registration.etag)
        except (PreconditionFailed, NotFound):
            log_event("credentials.webhook_changed_meanwhile", registration_id=registration.id)
