"""The 6-hourly token refresher (DESIGN §3, issue 11 item 6).

Every active credential whose ``dueAt`` falls within ``TOKEN_EXPIRY_THRESHOLD_MINUTES`` (default 420: the timer
interval plus an hour, so nothing lapses between two runs) is handled, over every page of the query, at most
``concurrency`` at a time. ``dueAt`` is when a credential next needs the refresher: its access token's expiry, the
idle limit of a refresh token that lapses unused (refreshing it keeps it alive), or the warning date of a deadline a
refresh cannot meet — an API key's or certificate's expiry, a rotation interval.

Refreshes go through the credential service's locked path, which audits each attempt; a dead grant marks the
credential, its connections and their tasks ``needs_reauth`` and alerts once (the credential then leaves this
query). A deadline is warned about once: the credential remembers which deadline it was warned for.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from castiel.clock import Clock, now_utc, system_clock
from castiel.credentials.alerts import AlertCallback, CredentialAlert, CredentialAlertKind, log_credential_alert
from castiel.credentials.vault import CredentialVault
from castiel.errors import CastielError, InvalidGrant, PreconditionFailed
from castiel.models import CredentialMetadata, CredentialStatus, RefreshOutcome, format_utc
from castiel.ports import DocumentStore, Filter, Query
from castiel.telemetry import log_event
from castiel.telemetry.outcomes import credential_handled

TRIGGER = "schedule"
DEFAULT_CONCURRENCY = 8
_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What one run did, per outcome."""

    refreshed: int = 0
    already_fresh: int = 0
    needs_reauth: int = 0
    failed: int = 0
    warned: int = 0


class TokenRefresher:
    """Finds credentials that need the refresher and refreshes, or warns about, each."""

    def __init__(
        self,
        store: DocumentStore,
        vault: CredentialVault,
        *,
        threshold: timedelta,
        concurrency: int = DEFAULT_CONCURRENCY,
        page_size: int = _PAGE_SIZE,
        clock: Clock = system_clock,
        alert: AlertCallback = log_credential_alert,
    ) -> None:
        self._store = store
        self._vault = vault
        self._threshold = threshold
        self._slots = asyncio.Semaphore(concurrency)
        self._page_size = page_size
        self._clock = clock
        self._alert = alert

    async def run(self) -> RefreshReport:
        """One pass over every credential due within the threshold."""
        cutoff = now_utc(self._clock) + self._threshold
        query = Query(
            filters=(Filter("status", "==", CredentialStatus.ACTIVE.value), Filter("dueAt", "<=", format_utc(cutoff))),
            order_by=(("dueAt", "asc"),),
            limit=self._page_size,
        )
        counts: Counter[RefreshOutcome] = Counter()
        # A refreshed short-lived token (Google: one hour) can be due again within the cutoff, and so reappear
        # on a later page of the keyset order: each credential is handled once per run.
        handled: set[tuple[str, str]] = set()
        continuation: str | None = None
        while True:
            page = await self._store.query(CredentialMetadata.container, replace(query, continuation=continuation))
            due = [CredentialMetadata.model_validate(doc) for doc in page.items]
            due = [credential for credential in due if (credential.tenant_id, credential.id) not in handled]
            handled.update((credential.tenant_id, credential.id) for credential in due)
            for outcomes in await asyncio.gather(*(self._bounded(credential, cutoff) for credential in due)):
                counts.update(outcomes)
            continuation = page.continuation
            if continuation is None:
                break
        report = RefreshReport(**{outcome.value: counts[outcome] for outcome in RefreshOutcome})
        log_event("token_refresher.run", **{outcome.value: counts[outcome] for outcome in RefreshOutcome})
        return report

    async def _bounded(self, credential: CredentialMetadata, cutoff: datetime) -> list[RefreshOutcome]:
        async with self._slots:
            outcomes = await self._handle(credential, cutoff)
        credential_handled(credential, outcomes)
        return outcomes

    async def _handle(self, credential: CredentialMetadata, cutoff: datetime) -> list[RefreshOutcome]:
        outcomes = []
        refresh_at = credential.refresh_at()
        if refresh_at is not None and refresh_at <= cutoff:
            outcomes.append(await self._refresh(credential))
            credential = await self._vault.records.read(credential.tenant_id, credential.id)
        warn_at = credential.warn_at()
        if warn_at is not None and warn_at <= cutoff and credential.status is CredentialStatus.ACTIVE:
            outcomes.extend(await self._warn(credential))
        return outcomes

    async def _refresh(self, credential: CredentialMetadata) -> RefreshOutcome:
        try:
            result = await self._vault.refresh(
                credential.tenant_id, credential.id, seen_version=credential.version, trigger=TRIGGER
            )
        except InvalidGrant:
            return RefreshOutcome.NEEDS_REAUTH
        except CastielError as exc:
            # Audited by the service; the next run (or the adapter's on-demand refresh) tries again.
            log_event("token_refresher.failed", level=logging.WARNING, credential_id=credential.id, error=str(exc))
            return RefreshOutcome.FAILED
        return result.outcome

    async def _warn(self, credential: CredentialMetadata) -> list[RefreshOutcome]:
        deadline = credential.deadline()
        if deadline is None:
            return []
        try:
            await self._vault.records.replace(credential, {"warned_for": deadline})
        except PreconditionFailed:
            return []  # changed meanwhile (rotated, or another run warned): the next run looks again
        expiring = not credential.refreshable and credential.expires_at == deadline
        what = "expires" if expiring else "is due for rotation"
        detail = (
            f"{credential.credential_type} {credential.id} of connection {credential.connection_id} {what} at "
            f"{format_utc(deadline)}; replace it with `castiel credentials rotate {credential.id}`"
        )
        self._alert(
            CredentialAlert(
                CredentialAlertKind.DEADLINE,
                credential.tenant_id,
                credential.id,
                detail,
                (credential.connection_id,),
            )
        )
        await self._vault.audit(credential, RefreshOutcome.WARNED, TRIGGER, error=detail)
        return [RefreshOutcome.WARNED]
