"""The webhook receiver: one provider delivery in, one HTTP answer out (DESIGN §6).

Independent of the Functions runtime: it takes a ``WebhookRequest`` and returns a ``WebhookResponse``;
``castiel.triggers`` converts to and from ``azure.functions`` types. Bad input is always a 4xx with a JSON reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from castiel.clock import Clock, system_clock
from castiel.webhooks.registrations import WebhookRegistrations

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A delivery as received: the route's registration id, headers (any case), raw body bytes."""

    registration_id: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """What to answer the provider."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Mapping[str, object]) -> WebhookResponse:
        return cls(status=status, body=orjson.dumps(payload))

    @classmethod
    def error(cls, status: int, reason: str) -> WebhookResponse:
        return cls.json(status, {"error": reason})


class WebhookReceiver:
    """Runs the receiver flow of DESIGN §6 for one delivery."""

    def __init__(self, registrations: WebhookRegistrations, *, clock: Clock = system_clock) -> None:
        self._registrations = registrations
        self._clock = clock

    async def handle(self, request: WebhookRequest) -> WebhookResponse:
        """Answer one delivery."""
        registration = await self._registrations.find(request.registration_id)
        if registration is None or registration.status != "active":
            return WebhookResponse.error(404, f"no active webhook registration '{request.registration_id}'")
        if len(request.body) > MAX_BODY_BYTES:
            return WebhookResponse.error(413, f"body of {len(request.body)} bytes exceeds {MAX_BODY_BYTES}")
        return WebhookResponse.error(501, f"provider '{registration.provider.value}' deliveries are not handled yet")
