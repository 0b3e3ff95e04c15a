"""Verified webhook requests → the ``OutboundChange``s to enqueue, the provider's delivery id, or a handshake.

DESIGN §6 steps 3 and 4, as pure functions: no I/O, the correlation id and receive time passed in. The receiver calls
``parse_delivery`` only after the signature verified, and maps the outcomes:

- ``handshake`` set → answer exactly ``status_code``/``body``/``content_type``; enqueue nothing (Notion's
  ``verification_token`` is stored as pending by the caller).
- ``changes`` empty, no handshake → a valid event the engine does not sync (GitHub ``star``): 200/202, nothing queued.
- ``InvalidMessage`` → 400 with its text, which names what the sender got wrong. No other exception escapes for any
  headers or body.

Header names are matched case-insensitively. One parser module per provider lives in ``castiel.webhooks.parsers``;
each module's docstring says how that provider's events map to entity types, external ids and operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType

from castiel.models import Provider, WebhookRegistration
from castiel.webhooks.parsers import github, google, notion, salesforce, slack, standard
from castiel.webhooks.parsers.base import Handshake, HandshakeKind, ParsedDelivery, WebhookDelivery, lower_headers

__all__ = ["Handshake", "HandshakeKind", "ParsedDelivery", "parse_delivery"]

_PARSERS: Mapping[Provider, Callable[[WebhookDelivery], ParsedDelivery]] = MappingProxyType(
    {
        Provider.GITHUB: github.parse,
        Provider.SLACK: slack.parse,
        Provider.NOTION: notion.parse,
        Provider.SALESFORCE: salesforce.parse,
        Provider.GOOGLE: google.parse,
        Provider.STANDARD: standard.parse,
    }
)


def parse_delivery(
    registration: WebhookRegistration,
    headers: Mapping[str, str],
    body: bytes,
    *,
    correlation_id: str,
    received_at: datetime,
) -> ParsedDelivery:
    """Parse a verified delivery for ``registration``; raises only ``InvalidMessage``, with a reason."""
    delivery = WebhookDelivery(registration, lower_headers(headers), body, correlation_id, received_at)
    return _PARSERS[registration.provider](delivery)
