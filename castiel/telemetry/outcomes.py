"""What each service's outcomes count as, in metrics: one call at the place the outcome is decided.

The mapping lives here rather than at the call sites, so a service adds one line and the dashboards' definitions
(``infra/queries/*.kql``) have one place to agree with.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from castiel.models import CredentialMetadata, RateLimitCheck, RefreshOutcome, SyncCounts, SyncResult
from castiel.telemetry.metrics import Metric, record
from castiel.telemetry.spans import annotate

Direction = Literal["inbound", "outbound"]

_SUCCEEDED = frozenset({"succeeded", "skipped"})
"""Result statuses that end an execution well (``skipped``: an outbound change with nothing to do)."""
_FAILED = frozenset({"failed", "needs_reauth"})
"""Result statuses that end it for good; the others (retrying, deferred, paused) come back later."""
_COUNTERS: dict[Direction, tuple[Metric, Metric]] = {
    "inbound": (Metric.INBOUND_SUCCESS, Metric.INBOUND_FAILED),
    "outbound": (Metric.OUTBOUND_SUCCESS, Metric.OUTBOUND_FAILED),
}
_RECORD_OUTCOMES = tuple(name for name in SyncCounts.model_fields if name != "fetched")
"""``sync_records`` outcomes of a pull: every count but ``fetched``, which the others break down."""


def sync_finished(direction: Direction, result: SyncResult) -> None:
    """A sync execution wrote its final (or retrying) result: its duration, its records, and whether it ended well."""
    attributes: dict[str, str | None] = {
        "tenant": result.tenant_id,
        "connection": result.connection_id,
        "direction": direction,
    }
    if result.finished_at is not None:
        duration = (result.finished_at - result.started_at).total_seconds() * 1000
        record(Metric.SYNC_DURATION_MS, duration, **attributes, status=result.status)
    for outcome, count in _record_counts(result):
        if count:
            record(Metric.SYNC_RECORDS, count, **attributes, outcome=outcome)
    success, failure = _COUNTERS[direction]
    if result.status in _SUCCEEDED:
        record(success, **attributes, outcome=result.status)
    elif result.status in _FAILED:
        record(failure, **attributes, reason=result.status)


def _record_counts(result: SyncResult) -> list[tuple[str, int]]:
    if result.targets:
        statuses: dict[str, int] = {}
        for target in result.targets:
            statuses[target.status] = statuses.get(target.status, 0) + 1
        return sorted(statuses.items())
    return [(name, getattr(result.counts, name)) for name in _RECORD_OUTCOMES]


def webhook_answered(*, provider: str, tenant: str | None, outcome: str, status: int, latency_ms: float) -> None:
    """One webhook delivery answered: accepted (below 400) or rejected, and how long it took; the invocation's span
    learns the provider, so App Insights ``requests`` give latency percentiles per provider."""
    annotate(tenant=tenant, provider=provider)
    attributes: dict[str, str | None] = {"provider": provider, "tenant": tenant, "outcome": outcome}
    record(Metric.WEBHOOK_SUCCESS if status < 400 else Metric.WEBHOOK_REJECTED, **attributes, status=str(status))
    record(Metric.WEBHOOK_LATENCY_MS, latency_ms, **attributes)


def credential_handled(credential: CredentialMetadata, outcomes: Iterable[RefreshOutcome]) -> None:
    """The token refresher handled one credential: each refresh's outcome (warnings are alerts, not counted)."""
    attributes: dict[str, str | None] = {
        "tenant": credential.tenant_id,
        "connection": credential.connection_id,
        "provider": credential.provider.value,
    }
    for outcome in outcomes:
        if outcome in (RefreshOutcome.REFRESHED, RefreshOutcome.ALREADY_FRESH):
            record(Metric.REFRESHER_SUCCESS, **attributes, outcome=outcome.value)
        elif outcome in (RefreshOutcome.FAILED, RefreshOutcome.NEEDS_REAUTH):
            record(Metric.REFRESHER_FAILED, **attributes, reason=outcome.value)


def rate_limited(check: RateLimitCheck, *, tenant: str, connection: str, provider: str, operation: str) -> None:
    """A rate-limit check refused a call: queued for later (fetch, create, update) or rejected (delete)."""
    metric = Metric.RATELIMIT_QUEUED if check.queued else Metric.RATELIMIT_REJECTED
    record(
        metric,
        tenant=tenant,
        connection=connection,
        provider=provider,
        operation=operation,
        limit_level=check.level,
    )


def dead_lettered(*, queue: str, reason: str) -> None:
    """A queue message was dead-lettered: ``permanent``, ``retries_exhausted`` or ``max_delivery_count``."""
    record(Metric.DEAD_LETTERED, queue=queue, reason=reason)


def tasks_scheduled(count: int) -> None:
    """The scheduler queued ``count`` sync tasks."""
    record(Metric.TASKS_SCHEDULED, count)
