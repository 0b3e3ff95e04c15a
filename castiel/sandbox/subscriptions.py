"""Webhooks on: every change of a sandbox record — an edit from ``castiel sandbox edit``, a write Castiel pushed — is
sent as its provider's signed event to the URLs subscribed to that provider, as the real providers do once a webhook
is registered with them.

Events are sent in the background, concurrently with the answer to the write that caused them, so they race it as
real ones do (a create's webhook may arrive before the create's answer). A failed send is logged and dropped: the
receiver's pulls catch up, as they must after a provider's lost delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import httpx

from castiel.clock import Clock, system_clock
from castiel.models import Operation
from castiel.sandbox.state import Sandbox
from castiel.sandbox.webhooks import WebhookSender
from castiel.telemetry import log_event


@dataclass(frozen=True, slots=True)
class Subscription:
    """Where one provider's events go, and how they are signed (a secret; Google's audience)."""

    provider: str
    url: str
    secret: str | None = None
    audience: str | None = None


class WebhookSubscriptions:
    """Sends the sandbox's changes to the subscribed URLs."""

    def __init__(self, sandbox: Sandbox, http: httpx.AsyncClient, *, clock: Clock = system_clock) -> None:
        self._sender = WebhookSender(http, sandbox.signing_key, clock=clock)
        self._subscriptions: defaultdict[str, list[Subscription]] = defaultdict(list)
        self._sending: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0
        sandbox.listeners.append(self._changed)

    def subscribe(self, subscription: Subscription) -> None:
        """Send ``subscription.provider``'s events to ``subscription.url`` from now on (one subscription per URL)."""
        kept = [other for other in self._subscriptions[subscription.provider] if other.url != subscription.url]
        self._subscriptions[subscription.provider] = [*kept, subscription]

    def subscriptions(self) -> list[Subscription]:
        """Every subscription, by provider."""
        return [found for provider in sorted(self._subscriptions) for found in self._subscriptions[provider]]

    async def drain(self) -> None:
        """Wait for the events being sent."""
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    def _changed(self, provider: str, entity_type: str, operation: Operation, body: dict[str, Any]) -> None:
        subscriptions = self._subscriptions.get(provider)
        if not subscriptions:
            return
        loop = asyncio.get_running_loop()
        for subscription in subscriptions:
            task = loop.create_task(self._send(subscription, operation, dict(body)))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, subscription: Subscription, operation: Operation, body: dict[str, Any]) -> None:
        try:
            answer = await self._sender.send(subscription.provider, subscription.url, operation, body,
                                             secret=subscription.secret, audience=subscription.audience)  # fmt: skip
        except httpx.HTTPError as exc:
            self.failed += 1
            log_event("sandbox.webhook_failed", level=logging.WARNING, provider=subscription.provider,
                      url=subscription.url, error=str(exc) or type(exc).__name__)  # fmt: skip
            return
        self.sent += 1
        if answer.status_code >= 400:
            self.failed += 1
            log_event("sandbox.webhook_refused", level=logging.WARNING, provider=subscription.provider,
                      status=answer.status_code, answer=answer.text[:200])  # fmt: skip
