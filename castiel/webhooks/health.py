"""A registration's health, derived from its ``webhook-audit`` records (30 days of deliveries).

The audit is the one durable record of every delivery, so health needs no counters of its own on the hot path and
survives restarts: accepted, rejected and failed deliveries, the last one received, and a status.
"""

from __future__ import annotations

from castiel.models import WebhookAudit, WebhookHealth
from castiel.ports import DocumentStore, Filter, Query

OUTCOME_GROUPS: dict[str, tuple[str, ...]] = {
    "accepted": ("accepted", "duplicate", "handshake"),
    "rejected": ("bad_signature", "malformed", "too_large", "verification_refused"),
    "failed": ("enqueue_failed", "verify_unavailable", "misconfigured", "unavailable"),
}
"""Audit outcomes counted under each health counter (``unknown_registration`` belongs to no registration)."""


def health_status(accepted: int, rejected: int, failed: int) -> str:
    """healthy / degraded / failing from the share of deliveries that were not accepted."""
    total = accepted + rejected + failed
    if total == 0:
        return "healthy"
    bad = (rejected + failed) / total
    if bad >= 0.5:
        return "failing"
    if bad >= 0.05:
        return "degraded"
    return "healthy"


async def registration_health(store: DocumentStore, registration_id: str) -> WebhookHealth:
    """Counters, last delivery and status of one registration."""
    counts = {
        group: await store.count(
            WebhookAudit.container,
            Query(filters=(Filter("outcome", "in", outcomes),), partition_key=registration_id),
        )
        for group, outcomes in OUTCOME_GROUPS.items()
    }
    latest = await store.query(
        WebhookAudit.container,
        Query(
            # Only audit lines carry receivedAt (not the ledger's "seen" documents), and Cosmos DB needs the sort
            # field present in every matching document.
            filters=(Filter("receivedAt", ">", ""),),
            partition_key=registration_id,
            order_by=(("receivedAt", "desc"),),
            limit=1,
        ),
    )
    last = WebhookAudit.model_validate(latest.items[0]).received_at if latest.items else None
    return WebhookHealth(**counts, last_received_at=last, status=health_status(**counts))
