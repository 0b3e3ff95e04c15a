"""A registration's health and recent deliveries, read from its ``webhook-audit`` records (30 days of deliveries).

The audit is the one durable record of every delivery, so health needs no counters of its own on the hot path and
survives restarts. Outcomes fall into four groups (``OUTCOME_GROUPS``): accepted, duplicates (a provider's retry of
something already accepted: not a problem, not new work either), rejected (the sender's fault) and failed (ours).
"""

from __future__ import annotations

from castiel.models import DeliveryOutcome, WebhookAudit, WebhookHealth
from castiel.ports import DocumentStore, Filter, Query

OUTCOME_GROUPS: dict[str, tuple[DeliveryOutcome, ...]] = {
    "accepted": (DeliveryOutcome.ACCEPTED, DeliveryOutcome.HANDSHAKE),
    "duplicate": (DeliveryOutcome.DUPLICATE,),
    "rejected": (
        DeliveryOutcome.BAD_SIGNATURE,
        DeliveryOutcome.MALFORMED,
        DeliveryOutcome.TOO_LARGE,
        DeliveryOutcome.VERIFICATION_REFUSED,
    ),
    "failed": (
        DeliveryOutcome.ENQUEUE_FAILED,
        DeliveryOutcome.VERIFY_UNAVAILABLE,
        DeliveryOutcome.MISCONFIGURED,
        DeliveryOutcome.UNAVAILABLE,
    ),
}
"""Audit outcomes counted under each health group (``unknown_registration`` belongs to no registration)."""

# Only audit lines carry receivedAt (not the ledger's "seen" documents), and Cosmos DB needs the sort field present
# in every matching document.
_AUDIT_LINES = Filter("receivedAt", ">", "")


def outcomes_named(name: str) -> tuple[DeliveryOutcome, ...]:
    """The outcomes a name stands for: a group's (``rejected``), or the one outcome so named (``bad_signature``);
    ``ValueError`` saying which names there are otherwise."""
    if name in OUTCOME_GROUPS:
        return OUTCOME_GROUPS[name]
    try:
        return (DeliveryOutcome(name),)
    except ValueError:
        raise ValueError(
            f"{name!r} is neither a group ({', '.join(OUTCOME_GROUPS)}) nor an outcome ({', '.join(DeliveryOutcome)})"
        ) from None


def health_status(accepted: int, duplicates: int, rejected: int, failed: int) -> str:
    """healthy / degraded / failing from the share of deliveries that were rejected or failed."""
    total = accepted + duplicates + rejected + failed
    if total == 0:
        return "healthy"
    bad = (rejected + failed) / total
    if bad >= 0.5:
        return "failing"
    if bad >= 0.05:
        return "degraded"
    return "healthy"


async def registration_health(store: DocumentStore, registration_id: str) -> WebhookHealth:
    """Counters per group, the last delivery (time, outcome, reason) and a status of one registration."""
    counts = {
        group: await store.count(
            WebhookAudit.container,
            Query(filters=(Filter("outcome", "in", outcomes),), partition_key=registration_id),
        )
        for group, outcomes in OUTCOME_GROUPS.items()
    }
    accepted, duplicates, rejected, failed = (
        counts[group] for group in ("accepted", "duplicate", "rejected", "failed")
    )
    latest = await recent_deliveries(store, registration_id, limit=1)
    last = latest[0] if latest else None
    return WebhookHealth(
        accepted=accepted,
        duplicates=duplicates,
        rejected=rejected,
        failed=failed,
        last_received_at=last.received_at if last else None,
        last_outcome=last.outcome if last else None,
        last_reason=last.reason if last else None,
        status=health_status(accepted, duplicates, rejected, failed),
    )


async def recent_deliveries(
    store: DocumentStore, registration_id: str, *, outcomes: tuple[DeliveryOutcome, ...] = (), limit: int
) -> list[WebhookAudit]:
    """The registration's last ``limit`` deliveries, newest first, only those with one of ``outcomes`` if given."""
    filters = (_AUDIT_LINES, Filter("outcome", "in", tuple(outcomes))) if outcomes else (_AUDIT_LINES,)
    page = await store.query(
        WebhookAudit.container,
        Query(filters=filters, partition_key=registration_id, order_by=(("receivedAt", "desc"),), limit=limit),
    )
    return [WebhookAudit.model_validate(doc) for doc in page.items]
