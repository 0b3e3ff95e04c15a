"""Webhook registrations, their health, and the audit line of every delivery (``webhooks``, ``webhook-audit``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from castiel.models.base import Document, TenantDocument, UtcDateTime, WireModel
from castiel.models.enums import Provider


class WebhookHealth(WireModel):
    """A registration's delivery health, derived from its audit records (``castiel.webhooks.health``): deliveries
    per group of outcomes (``health.OUTCOME_GROUPS``), the last one's time, outcome and reason, and a status."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    last_received_at: UtcDateTime | None = None
    last_outcome: str | None = None
    last_reason: str | None = None
    status: str = "healthy"


class VerificationState(StrEnum):
    """Whether a Notion registration takes new verification tokens (``castiel.webhooks.notion_verification``)."""

    OPEN = "open"
    CONFIRMED = "confirmed"


class WebhookRegistration(TenantDocument):
    """A webhook endpoint registered for one connection.

    ``credential_id`` names the ``webhook_secret`` credential its deliveries are signed with
    (``castiel.credentials.webhook_secrets``); None for a scheme without a secret and for a Notion registration whose
    token is not yet confirmed. Registrations stored before signing secrets were credentials have only
    ``secret_name`` (in the oldest stores shared by a connection's registrations) and verify with it until their
    secret is next rotated, which gives them a credential of their own.

    ``verification`` is a Notion registration's: ``open`` while it takes verification tokens, ``confirmed`` once an
    operator promoted one; None for other providers, and for Notion registrations stored before it existed (they
    take no token until re-opened).
    """

    container: ClassVar[str] = "webhooks"

    provider: Provider
    connection_id: str
    integration_id: str
    credential_id: str | None = None
    secret_name: str | None = None
    events: list[str] = Field(default_factory=list)
    status: str = "active"
    settings: dict[str, Any] = Field(default_factory=dict)
    verification: VerificationState | None = None


class DeliveryOutcome(StrEnum):
    """How the receiver handled a delivery: ``WebhookAudit.outcome`` (stored as text, so a newer outcome never
    breaks an older reader)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    HANDSHAKE = "handshake"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    VERIFICATION_REFUSED = "verification_refused"
    UNKNOWN_REGISTRATION = "unknown_registration"
    MISCONFIGURED = "misconfigured"
    VERIFY_UNAVAILABLE = "verify_unavailable"
    ENQUEUE_FAILED = "enqueue_failed"
    UNAVAILABLE = "unavailable"


class WebhookAudit(Document):
    """One webhook delivery; partitioned by ``/registrationId``, kept 30 days."""

    container: ClassVar[str] = "webhook-audit"

    registration_id: str
    tenant_id: str | None = None
    delivery_id: str | None = None
    outcome: str
    status_code: int
    reason: str | None = None
    latency_ms: float
    received_at: UtcDateTime
    ttl: int = 30 * 24 * 3600
