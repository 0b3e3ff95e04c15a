"""The 6-hourly token refresher: credentials expiring within the threshold are refreshed and audited (DESIGN §3).

The threshold (default 420 minutes) is the timer interval plus an hour, so nothing lapses between two runs. How a
credential type is refreshed is a ``RefreshStrategy``; a type without one is audited as ``unsupported`` so an
operator sees it rather than finding a lapsed token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import CastielError
from castiel.models import CredentialMetadata, TokenRefreshAudit, format_utc, stable_id
from castiel.ports import DocumentStore, Filter, Query
from castiel.telemetry import Metric, emit_metric, log_event


class RefreshStrategy(Protocol):
    """Refreshes one credential type; returns the updated metadata (new expiry)."""

    async def refresh(self, credential: CredentialMetadata) -> CredentialMetadata: ...


@dataclass(frozen=True, slots=True)
class RefreshReport:
    refreshed: int
    failed: int
    unsupported: int


class TokenRefresher:
    """Finds credentials about to expire and refreshes each with its type's strategy."""

    def __init__(
        self,
        store: DocumentStore,
        strategies: Mapping[str, RefreshStrategy],
        *,
        threshold: timedelta,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._strategies = strategies
        self._threshold = threshold
        self._clock = clock

    async def run(self) -> RefreshReport:
        """One pass over every credential expiring within the threshold."""
        now = now_utc(self._clock)
        page = await self._store.query(
            CredentialMetadata.container,
            Query(
                filters=(
                    Filter("status", "==", "active"),
                    Filter("expiresAt", "<=", format_utc(now + self._threshold)),
                ),
                order_by=(("expiresAt", "asc"),),
            ),
        )
        counts = {"refreshed": 0, "failed": 0, "unsupported": 0}
        for doc in page.items:
            credential = CredentialMetadata.model_validate(doc)
            outcome, error = await self._refresh_one(credential)
            counts[outcome] += 1
            audit = TokenRefreshAudit(
                id=stable_id("refresh", credential.id, now.timestamp()),
                tenant_id=credential.tenant_id,
                credential_id=credential.id,
                connection_id=credential.connection_id,
                outcome=outcome,
                error=error,
                attempted_at=now,
            )
            await self._store.upsert(TokenRefreshAudit.container, audit.to_doc())
        log_event("token_refresher.run", **counts)
        emit_metric(Metric.TOKEN_REFRESHED, counts["refreshed"])
        return RefreshReport(**counts)

    async def _refresh_one(self, credential: CredentialMetadata) -> tuple[str, str | None]:
        strategy = self._strategies.get(credential.credential_type)
        if strategy is None:
            return "unsupported", f"no refresh strategy for credential type {credential.credential_type}"
        try:
            updated = await strategy.refresh(credential)
        except CastielError as exc:
            return "failed", str(exc)
        await self._store.replace(CredentialMetadata.container, updated.to_doc(), if_match=credential.etag)
        return "refreshed", None
