"""The credential service: what people do with credentials (add, rotate, remove), and what machines need from them
(a refreshed token, an ``httpx.Auth`` per connection, Salesforce's instance URL).

A refresh never races (issue 11 item 5). Within a process, concurrent refreshes of one credential share one flight;
across processes the refresh lock (``lock.py``) admits one holder. The holder re-reads the stored version first —
another holder may have refreshed already, and then that token is used — refreshes, and writes the secret, then the
metadata, etag-conditionally and fenced. On ``invalid_grant`` it re-reads once more before declaring the grant dead,
because a concurrent refresh may have rotated the refresh token it sent.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from redis.asyncio import Redis

from castiel.clock import Clock, now_utc, system_clock
from castiel.credentials.alerts import AlertCallback, log_credential_alert
from castiel.credentials.auth import auth_for
from castiel.credentials.lock import RefreshLocks
from castiel.credentials.oauth import TokenEndpoint, renew
from castiel.credentials.reauth import Reauthorizations, connections_using
from castiel.credentials.records import CredentialRecords, Current, described_by, secret_name
from castiel.credentials.tokens import ConnectionTokens
from castiel.credentials.types import OAUTH_TYPES, Credential, WebhookSecret
from castiel.credentials.webhook_secrets import check_verifies, registrations_signed_by, republish
from castiel.errors import (
    AlreadyExists,
    CastielError,
    ConfigError,
    InvalidGrant,
    LockLost,
    NotFound,
    PermanentError,
    PreconditionFailed,
)
from castiel.models import (
    Connection,
    CredentialMetadata,
    CredentialStatus,
    Provider,
    RefreshOutcome,
    RotationPolicy,
    TokenRefreshAudit,
    WebhookRegistration,
)
from castiel.ports import DocumentStore, SecretStore
from castiel.telemetry import log_event, new_id


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What a refresh did, and the credential as it stands after it."""

    outcome: RefreshOutcome
    current: Current


class CredentialVault:
    """Credentials of every tenant: values in the secret store, metadata in ``credentials``."""

    def __init__(
        self,
        store: DocumentStore,
        secrets: SecretStore,
        locks: RefreshLocks,
        endpoint: TokenEndpoint,
        *,
        clock: Clock = system_clock,
        alert: AlertCallback = log_credential_alert,
    ) -> None:
        self.records = CredentialRecords(store, secrets)
        self._store = store
        self._locks = locks
        self._endpoint = endpoint
        self._clock = clock
        self._reauth = Reauthorizations(store, clock=clock, alert=alert)
        self._flights: dict[tuple[str, str, int | None], asyncio.Task[RefreshResult]] = {}

    @classmethod
    def wire(
        cls,
        store: DocumentStore,
        secrets: SecretStore,
        redis: Redis,
        http: httpx.AsyncClient,
        *,
        clock: Clock = system_clock,
        alert: AlertCallback = log_credential_alert,
    ) -> CredentialVault:
        """The service over the process's backends: refresh locks on ``redis``, token requests over ``http``."""
        return cls(store, secrets, RefreshLocks(redis), TokenEndpoint(http), clock=clock, alert=alert)

    # ------------------------------------------------------------ people

    async def add(
        self,
        tenant_id: str,
        connection_id: str,
        value: Credential,
        *,
        credential_id: str | None = None,
        rotation: RotationPolicy | None = None,
        sole: bool = False,
    ) -> CredentialMetadata:
        """Store a new credential and make it the connection's (re-authorising the connection if it needed it).

        ``sole`` (what ``castiel credentials add`` asks for): ``PreconditionFailed`` while the connection has a
        credential, since a second one would leave the first claiming a connection that no longer uses it
        (``rotate`` replaces a value; ``remove`` first to change the type)."""
        if isinstance(value, WebhookSecret):
            raise ConfigError(
                "a webhook_secret signs one webhook registration's deliveries: `castiel webhooks add --secret`"
                " creates it with its registration"
            )
        connection = await self._connection(tenant_id, connection_id)
        if credential_id is not None:
            await self._refuse_taken(tenant_id, credential_id)
        existing = await self._credential_of(connection) if sole else None
        if existing is not None:
            raise PreconditionFailed(
                f"connection {connection.id} of tenant {tenant_id} already has credential {existing.id}"
                f" ({existing.credential_type}): `castiel credentials rotate {existing.id}` replaces its value;"
                f" `castiel credentials remove {existing.id}` first to give it another type"
            )
        return await self._add(connection, value, credential_id, rotation)

    async def _add(
        self, connection: Connection, value: Credential, credential_id: str | None, rotation: RotationPolicy | None
    ) -> CredentialMetadata:
        metadata = self._new_metadata(
            connection.tenant_id,
            connection.id,
            connection.provider,
            value,
            credential_id or uuid.uuid4().hex,
            rotation,
        )
        stored = await self._create(metadata, value)
        await self._link(connection, stored.id)
        await self._reauth.restore(stored)
        return stored

    async def _credential_of(self, connection: Connection) -> CredentialMetadata | None:
        """The credential the connection names, None when it names none or one that is gone."""
        if connection.credential_id is None:
            return None
        with suppress(NotFound):
            return await self.records.read(connection.tenant_id, connection.credential_id)
        return None

    async def add_webhook_secret(
        self, registration: WebhookRegistration, value: WebhookSecret, *, rotation: RotationPolicy | None = None
    ) -> CredentialMetadata:
        """Store the signing secret of ``registration`` (saved or about to be) as its own credential, whose id is the
        registration's; no connection authenticates with it: the registration names it (``credentialId``).
        ``AlreadyExists`` when that id is taken."""
        metadata = self._new_metadata(
            registration.tenant_id,
            registration.connection_id,
            registration.provider,
            value,
            registration.id,
            rotation,
        )
        return await self._create(metadata, value)

    def _new_metadata(
        self,
        tenant_id: str,
        connection_id: str,
        provider: Provider,
        value: Credential,
        credential_id: str,
        rotation: RotationPolicy | None,
    ) -> CredentialMetadata:
        return CredentialMetadata(
            id=credential_id,
            tenant_id=tenant_id,
            connection_id=connection_id,
            provider=provider,
            secret_name=secret_name(tenant_id, credential_id),
            rotation=rotation or RotationPolicy(),
            rotated_at=now_utc(self._clock),
            **described_by(value),
        )

    async def _refuse_taken(self, tenant_id: str, credential_id: str) -> None:
        with suppress(NotFound):
            await self.records.read(tenant_id, credential_id)
            raise AlreadyExists(f"credential {credential_id} of tenant {tenant_id} already exists: rotate it instead")

    async def _create(self, metadata: CredentialMetadata, value: Credential) -> CredentialMetadata:
        await self._refuse_taken(metadata.tenant_id, metadata.id)
        stored = await self.records.create(metadata, value)
        log_event(
            "credentials.added",
            credential_id=stored.id,
            connection_id=stored.connection_id,
            type=stored.credential_type,
        )
        return stored

    async def rotate(self, metadata: CredentialMetadata, value: Credential) -> CredentialMetadata:
        """Replace the value (a person's new key, or a re-authorisation); a ``needs_reauth`` credential is active
        again and its paused tasks resume. A webhook secret's previous value keeps verifying for the rotation grace;
        ``ConfigError`` (nothing changed) if the new one could not verify a registration it signs
        (``castiel.credentials.webhook_secrets``)."""
        if value.credential_type != metadata.credential_type:
            raise ConfigError(
                f"credential {metadata.id} is a {metadata.credential_type}, not a {value.credential_type}: "
                "remove it and add the new one"
            )
        signed = await registrations_signed_by(self._store, metadata)
        check_verifies(signed, value)
        async with self._locks.hold(metadata.tenant_id, metadata.id, floor=metadata.fence) as lease:
            current = await self.records.read(metadata.tenant_id, metadata.id)
            changes: dict[str, Any] = {
                "status": CredentialStatus.ACTIVE,
                "status_reason": None,
                "rotated_at": now_utc(self._clock),
                "warned_for": None,
            }
            rotated = await self.records.commit(current, value, changes, fence=lease.fence)
        await republish(self._store, signed)
        await self._reauth.restore(rotated)
        log_event("credentials.rotated", credential_id=rotated.id, version=rotated.version)
        return rotated

    async def reauthorize(self, tenant_id: str, connection_id: str, value: Credential) -> CredentialMetadata:
        """The connect flow's result: rotate the connection's credential when it has one of this type, else add it
        and remove the one it replaces (a person who authorised in the browser means the grant to be what is used)."""
        connection = await self._connection(tenant_id, connection_id)
        existing = await self._credential_of(connection)
        if existing is not None and existing.credential_type == value.credential_type:
            return await self.rotate(existing, value)
        stored = await self._add(connection, value, None, None)
        if existing is not None:
            await self.records.delete(existing)
            log_event("credentials.removed", credential_id=existing.id, replaced_by=stored.id)
        return stored

    async def remove(self, metadata: CredentialMetadata) -> None:
        """Delete the value and metadata, and unlink the connections that named it; ``PreconditionFailed`` while a
        webhook registration verifies with it (``castiel webhooks remove`` removes both)."""
        signed = await registrations_signed_by(self._store, metadata)
        if signed:
            raise PreconditionFailed(
                f"credential {metadata.id} signs webhook registration(s) {', '.join(r.id for r in signed)}:"
                " `castiel webhooks remove` removes a registration and its credential"
            )
        await self.records.delete(metadata)
        for connection in await connections_using(self._store, metadata):
            await self._link(connection, None)
        log_event("credentials.removed", credential_id=metadata.id)

    # ------------------------------------------------------------ machines

    async def auth_for_connection(self, connection: Connection) -> httpx.Auth:
        """The ``httpx.Auth`` that authenticates requests for ``connection`` (the adapters' one way in)."""
        current = await self.current(connection)
        if current.value.credential_type not in OAUTH_TYPES:
            return auth_for(current.value, connection.provider)
        refresh = partial(self._refresh_on_demand, connection.tenant_id, current.metadata.id)
        return auth_for(current.value, connection.provider, ConnectionTokens(connection, current, refresh, self._clock))

    async def _refresh_on_demand(self, tenant_id: str, credential_id: str, seen_version: int) -> Current:
        result = await self.refresh(tenant_id, credential_id, seen_version=seen_version, trigger="on_demand")
        return result.current

    async def api_root_for_connection(self, connection: Connection) -> str | None:
        """Salesforce: the ``instance_url`` its token endpoint last returned; other providers: None."""
        if connection.provider is not Provider.SALESFORCE:
            return None
        return (await self.current(connection)).metadata.instance_url

    async def current(self, connection: Connection) -> Current:
        """The connection's credential; ``ConfigError`` without one, ``InvalidGrant`` when it needs re-auth."""
        if connection.credential_id is None:
            raise ConfigError(
                f"connection {connection.id} has no credential: add one with `castiel credentials add` or `connect`"
            )
        # A missing credential stays missing until a person acts: permanent, so the task fails and the message is
        # dead-lettered with this reason instead of being redelivered (NotFound is not in the retry taxonomy).
        try:
            metadata = await self.records.read(connection.tenant_id, connection.credential_id)
            if metadata.status is CredentialStatus.NEEDS_REAUTH:
                raise InvalidGrant(_needs_reauth(metadata))
            return Current(metadata, await self.records.value(metadata))
        except NotFound as exc:
            raise PermanentError(
                f"connection {connection.id} of tenant {connection.tenant_id} names credential"
                f" {connection.credential_id}, but {exc}: add one with `castiel credentials add` or `connect`"
            ) from None

    async def refresh(
        self, tenant_id: str, credential_id: str, *, seen_version: int | None, trigger: str
    ) -> RefreshResult:
        """Refresh unless a version newer than ``seen_version`` already exists (None: refresh regardless).

        Concurrent calls with the same ``seen_version`` in this process share one refresh.
        """
        key = (tenant_id, credential_id, seen_version)
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._refresh(tenant_id, credential_id, seen_version, trigger))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: tuple[str, str, int | None], flight: asyncio.Task[RefreshResult]) -> None:
        self._flights.pop(key, None)
        if not flight.cancelled():
            flight.exception()  # retrieved here too, so a flight whose callers all left logs no warning

    async def _refresh(
        self, tenant_id: str, credential_id: str, seen_version: int | None, trigger: str
    ) -> RefreshResult:
        metadata = await self.records.read(tenant_id, credential_id)
        if not metadata.refreshable:
            raise ConfigError(
                f"credential {credential_id} ({metadata.credential_type}) has nothing to refresh it with: "
                "give it a new value with `castiel credentials rotate`"
            )
        try:
            return await self._refresh_locked(metadata, seen_version, trigger)
        except InvalidGrant:
            raise
        except CastielError as exc:
            await self.audit(metadata, RefreshOutcome.FAILED, trigger, error=str(exc))
            raise

    async def _refresh_locked(
        self, metadata: CredentialMetadata, seen_version: int | None, trigger: str
    ) -> RefreshResult:
        async with self._locks.hold(metadata.tenant_id, metadata.id, floor=metadata.fence) as lease:
            current = await self.records.read(metadata.tenant_id, metadata.id)
            if current.status is CredentialStatus.NEEDS_REAUTH:
                raise InvalidGrant(_needs_reauth(current))
            if seen_version is not None and current.version > seen_version:
                return await self._settled(RefreshOutcome.ALREADY_FRESH, current, trigger)
            value = await self.records.value(current)
            now = now_utc(self._clock)
            try:
                renewed = await renew(value, current.provider, self._endpoint, now)
            except InvalidGrant as exc:
                return await self._grant_refused(current, exc, trigger)
            try:
                stored = await self.records.commit(current, renewed, {"last_refreshed_at": now}, fence=lease.fence)
            except PreconditionFailed:
                return await self._superseded(current, trigger)
        await self.audit(stored, RefreshOutcome.REFRESHED, trigger)
        log_event("credentials.refreshed", credential_id=stored.id, version=stored.version, trigger=trigger)
        return RefreshResult(RefreshOutcome.REFRESHED, Current(stored, renewed))

    async def _grant_refused(self, current: CredentialMetadata, exc: InvalidGrant, trigger: str) -> RefreshResult:
        latest = await self.records.read(current.tenant_id, current.id)
        if latest.version != current.version:
            # A concurrent refresh (whose lock had expired) rotated the refresh token we sent: its token is good.
            return await self._settled(RefreshOutcome.ALREADY_FRESH, latest, trigger)
        reason = f"refresh refused by {current.provider.value}: {exc}"
        await self._reauth.mark_needs_reauth(latest, reason)
        await self.audit(latest, RefreshOutcome.NEEDS_REAUTH, trigger, error=reason)
        raise InvalidGrant(_needs_reauth(latest.model_copy(update={"status_reason": reason}))) from None

    async def _superseded(self, current: CredentialMetadata, trigger: str) -> RefreshResult:
        latest = await self.records.read(current.tenant_id, current.id)
        if latest.version <= current.version:
            raise LockLost(f"credential {current.id} changed while it was being refreshed")
        log_event("credentials.refresh_superseded", credential_id=current.id, version=latest.version)
        return await self._settled(RefreshOutcome.ALREADY_FRESH, latest, trigger)

    async def _settled(self, outcome: RefreshOutcome, metadata: CredentialMetadata, trigger: str) -> RefreshResult:
        await self.audit(metadata, outcome, trigger)
        return RefreshResult(outcome, Current(metadata, await self.records.value(metadata)))

    async def audit(
        self, metadata: CredentialMetadata, outcome: RefreshOutcome, trigger: str, *, error: str | None = None
    ) -> None:
        """Record one refresh attempt (or warning) in ``token-refresh-audit``."""
        await self.records.audit(
            TokenRefreshAudit(
                id=new_id(),
                tenant_id=metadata.tenant_id,
                credential_id=metadata.id,
                connection_id=metadata.connection_id,
                outcome=outcome,
                trigger=trigger,
                error=error,
                attempted_at=now_utc(self._clock),
                version=metadata.version,
                new_expires_at=metadata.expires_at if outcome is RefreshOutcome.REFRESHED else None,
            )
        )

    # ------------------------------------------------------------ connections

    async def _connection(self, tenant_id: str, connection_id: str) -> Connection:
        try:
            return Connection.model_validate(await self._store.read(Connection.container, connection_id, tenant_id))
        except NotFound:
            raise NotFound(f"connection {connection_id} of tenant {tenant_id} does not exist") from None

    async def _link(self, connection: Connection, credential_id: str | None) -> None:
        """Point the connection at ``credential_id``, retrying once when it changed under us."""
        for attempt in range(2):
            try:
                await self._store.replace(
                    Connection.container,
                    connection.model_copy(update={"credential_id": credential_id}).to_doc(),
                    if_match=connection.etag,
                )
                return
            except PreconditionFailed:
                if attempt:
                    raise
                connection = await self._connection(connection.tenant_id, connection.id)


def _needs_reauth(metadata: CredentialMetadata) -> str:
    return (
        f"credential {metadata.id} of connection {metadata.connection_id} needs re-authorisation"
        f" ({metadata.status_reason or 'its grant was refused'}): run `castiel credentials connect"
        f" --tenant {metadata.tenant_id} --connection {metadata.connection_id}`"
    )
