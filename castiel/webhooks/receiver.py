"""The webhook receiver: one provider delivery in, one HTTP answer out (DESIGN §6).

Independent of the Functions runtime: it takes a ``WebhookRequest`` and returns a ``WebhookResponse``;
``castiel.triggers`` converts to and from ``azure.functions`` types. The order is fixed:

1. registration lookup (cached) → 404; body over 1 MiB → 413. An id not of a registration id's shape is answered 404
   without a lookup and without echoing it;
2. signature → 401 (audited; health is derived from the audit);
3. handshakes (Slack ``url_verification``, GitHub ``ping``, Notion's unsigned verification token: kept as one more
   candidate for an operator to confirm while the registration's verification is open, else 409);
4. parse into ``OutboundChange``s → 400 with a reason when it cannot be parsed;
5. idempotency: a delivery already accepted in the last 24 h → 200, nothing queued again;
6. enqueue on ``sync-outbound`` (deterministic message ids), audit, then 202 — or the status the provider requires;
   the delivery is remembered for 24 h only once its changes are stored (``ledger``: claim, then confirm).

The hot path costs one Redis round trip (the idempotency claim) plus the durable enqueue; both are coalesced across
the requests of one event-loop turn (one ``EVALSHA`` of the ledger's script, one ``send``), and the store
group-commits what arrives meanwhile: a 2xx is only sent once the changes are stored. The audit lines of the last
50 ms are written together in the background (one ``create_many``) and drained at shutdown; they record the
answer, they do not decide it. Bad input is always a 4xx with a JSON reason, never a 500. A fault on our side — a
backend unreachable (document store, secret store, queue, Google's keys), a corrupt secrets file, a registration
whose secrets cannot verify — is never the sender's: 503 with one generic reason so the provider retries, the detail
only in an ERROR log line and the audit. Request input that reaches a log line or the audit's registration id (the
URL's id, a delivery id, a source address) goes through ``castiel.text.printable``: escaped and bounded, never a raw
control character.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from castiel.clock import Clock, now_utc, system_clock, to_datetime
from castiel.coalesce import Coalescer
from castiel.errors import CastielError, ConfigError, InvalidMessage, RetryableError, SignatureError
from castiel.models import DeliveryOutcome, Provider, VerificationState, WebhookAudit, WebhookRegistration
from castiel.models.ids import is_valid_id
from castiel.ports import DocumentStore, MessageQueue, OutgoingMessage, SecretStore
from castiel.telemetry import current_correlation_id, log_event, new_correlation_id, new_id
from castiel.telemetry.outcomes import webhook_answered
from castiel.text import printable
from castiel.webhooks.events import Handshake, ParsedDelivery, parse_delivery
from castiel.webhooks.ledger import DeliveryLedger
from castiel.webhooks.notion_verification import MAX_CANDIDATES, VerificationCandidates, fingerprint, implausible
from castiel.webhooks.registrations import WebhookRegistrations
from castiel.webhooks.salesforce_soap import ACK_CONTENT_TYPE, ACKNOWLEDGEMENT
from castiel.webhooks.verifier_cache import VerifierCache

MAX_BODY_BYTES = 1024 * 1024
UNAVAILABLE_REASON = "temporarily unable to process the delivery; retry"
"""The one reason of every 503: the fault is ours (a backend, a secrets file, a registration that cannot verify)."""
NO_REGISTRATION_REASON = "no active webhook registration at this URL"
"""The 404 reason for an id that is not of a registration id's shape: such an id is never echoed."""

# Audit lines are written after the answer, so they wait to share one write with the lines of the next requests:
# one store call per 50 ms under load instead of one per event-loop turn, next to the enqueues that gate answers.
AUDIT_BATCH_SECONDS = 0.05
AUDIT_BATCH_MAX = 512

_VERIFICATION_CLOSED = "verification is closed for this registration (a token is confirmed); an operator can re-open it"

# Providers that document a 200 answer; everything else gets 202 Accepted.
_ANSWER_200 = frozenset({Provider.SLACK, Provider.NOTION, Provider.SALESFORCE})


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A delivery as received: the route's registration id, headers (lower-case names), raw body bytes, and the
    address it came from as the host saw it (``castiel.triggers.source_address``; None when unknown)."""

    registration_id: str
    headers: Mapping[str, str]
    body: bytes
    source_address: str | None = None


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

    def __init__(
        self,
        registrations: WebhookRegistrations,
        verifiers: VerifierCache,
        ledger: DeliveryLedger,
        store: DocumentStore,
        queue: MessageQueue,
        secrets: SecretStore,
        *,
        queue_name: str,
        clock: Clock = system_clock,
    ) -> None:
        self._registrations = registrations
        self._verifiers = verifiers
        self._ledger = ledger
        self._store = store
        self._queue = queue
        self._candidates = VerificationCandidates(secrets)
        self._queue_name = queue_name
        self._clock = clock
        self._audits_in_flight: set[asyncio.Future[CastielError | None]] = set()
        self._sends: Coalescer[list[OutgoingMessage], None] = Coalescer(self._send_together)
        self._audits: Coalescer[dict[str, Any], CastielError | None] = Coalescer(
            self._write_audits, max_batch=AUDIT_BATCH_MAX, delay=AUDIT_BATCH_SECONDS
        )

    async def drain(self) -> None:
        """Wait for background work: audit lines, ledger confirmations, a registration check (at shutdown; in tests)."""
        while self._audits_in_flight:
            await asyncio.gather(*list(self._audits_in_flight), return_exceptions=True)
        await self._ledger.drain()
        await self._registrations.drain()

    async def handle(self, request: WebhookRequest) -> WebhookResponse:
        """Answer one delivery; never raises for anything the sender controls, nor for a backend's fault (503)."""
        started = self._clock()
        # Every registration id keeps the id rule (generated or stored by an older version): an id of another shape
        # names none and is answered without a lookup.
        if not is_valid_id(request.registration_id):
            response = WebhookResponse.error(404, NO_REGISTRATION_REASON)
            answer = _Answer(DeliveryOutcome.UNKNOWN_REGISTRATION, response)
            self._audit(printable(request.registration_id), None, answer, started)
            return response
        try:
            registration = await self._registrations.find(request.registration_id)
        except CastielError as exc:
            answer = _unavailable(DeliveryOutcome.UNAVAILABLE, request.registration_id, exc)
            self._audit(request.registration_id, None, answer, started)
            return answer.response
        if registration is None or registration.status != "active":
            response = WebhookResponse.error(404, f"no active webhook registration '{request.registration_id}'")
            self._audit(request.registration_id, None, _Answer(DeliveryOutcome.UNKNOWN_REGISTRATION, response), started)
            return response
        if len(request.body) > MAX_BODY_BYTES:
            response = WebhookResponse.error(413, f"body of {len(request.body)} bytes exceeds {MAX_BODY_BYTES}")
            self._audit(registration.id, registration, _Answer(DeliveryOutcome.TOO_LARGE, response), started)
            return response
        try:
            answer = await self._verified_flow(registration, request, started)
        except CastielError as exc:
            answer = _unavailable(DeliveryOutcome.UNAVAILABLE, registration.id, exc)
        self._audit(registration.id, registration, answer, started)
        return answer.response

    async def _verified_flow(
        self, registration: WebhookRegistration, request: WebhookRequest, started: float
    ) -> _Answer:
        """Steps 2 to 6. A backend's ``CastielError`` escapes to ``handle``, which answers 503."""
        correlation_id = current_correlation_id() or new_correlation_id()
        if _is_unsigned_notion_verification(registration, request):
            parsed = self._parse(registration, request, correlation_id, started)
            if isinstance(parsed, WebhookResponse):
                return _Answer(DeliveryOutcome.MALFORMED, parsed)
            if parsed.handshake is not None and parsed.handshake.kind == "notion_verification":
                return await self._offer_candidate(registration, request, parsed.handshake)
        try:
            verifier = await self._verifiers.for_registration(registration)
            verified = await verifier.verify(request.headers, request.body, self._clock())
        except SignatureError as exc:
            return _Answer(DeliveryOutcome.BAD_SIGNATURE, WebhookResponse.error(401, f"signature rejected: {exc}"))
        except ConfigError as exc:
            # The registration's secrets or settings (or the secret store itself) cannot verify: ours to fix.
            return _unavailable(DeliveryOutcome.MISCONFIGURED, registration.id, exc)
        except RetryableError as exc:
            return _unavailable(DeliveryOutcome.VERIFY_UNAVAILABLE, registration.id, exc)
        parsed = self._parse(registration, request, correlation_id, started)
        if isinstance(parsed, WebhookResponse):
            return _Answer(DeliveryOutcome.MALFORMED, parsed, verified.delivery_id)
        if parsed.handshake is not None:
            return _Answer(DeliveryOutcome.HANDSHAKE, _handshake_response(parsed.handshake), parsed.delivery_id)
        delivery_id = verified.delivery_id or parsed.delivery_id
        delivery_key = delivery_id or hashlib.sha256(request.body).hexdigest()
        if not await self._ledger.claim(registration.id, delivery_key):
            return _Answer(
                DeliveryOutcome.DUPLICATE, self._accepted(registration, 200, {"duplicate": True}), delivery_id
            )
        try:
            await self._enqueue(parsed, delivery_key)
        except CastielError as exc:
            await self._ledger.release(registration.id, delivery_key)
            return _unavailable(DeliveryOutcome.ENQUEUE_FAILED, registration.id, exc, delivery_id)
        self._ledger.confirm(registration.id, delivery_key)
        status = 200 if registration.provider in _ANSWER_200 else 202
        accepted = self._accepted(registration, status, {"accepted": len(parsed.changes)})
        return _Answer(DeliveryOutcome.ACCEPTED, accepted, delivery_id)

    def _parse(
        self, registration: WebhookRegistration, request: WebhookRequest, correlation_id: str, started: float
    ) -> ParsedDelivery | WebhookResponse:
        try:
            return parse_delivery(
                registration,
                request.headers,
                request.body,
                correlation_id=correlation_id,
                received_at=to_datetime(started),
            )
        except InvalidMessage as exc:
            return WebhookResponse.error(400, str(exc))

    async def _enqueue(self, parsed: ParsedDelivery, delivery_key: str) -> None:
        if not parsed.changes:
            return
        messages = [
            OutgoingMessage(
                body=change.to_json_bytes(),
                message_id=change.message_id(f"{delivery_key}:{index}"),
                correlation_id=change.correlation_id,
                application_properties={"origin": "webhook", "tenantId": change.tenant_id},
            )
            for index, change in enumerate(parsed.changes)
        ]
        await self._sends.submit(messages)

    async def _send_together(self, batches: list[list[OutgoingMessage]]) -> list[None]:
        """One durable send for the changes of every request of this event-loop turn (all stored, or all 503)."""
        await self._queue.send(self._queue_name, [message for batch in batches for message in batch])
        return [None] * len(batches)

    def _accepted(self, registration: WebhookRegistration, status: int, payload: dict[str, object]) -> WebhookResponse:
        if registration.settings.get("organizationId"):
            # Salesforce Outbound Messages retry until they get this SOAP acknowledgement.
            return WebhookResponse(status=200, body=ACKNOWLEDGEMENT, content_type=ACK_CONTENT_TYPE)
        return WebhookResponse.json(status, payload)

    async def _offer_candidate(
        self, registration: WebhookRegistration, request: WebhookRequest, handshake: Handshake
    ) -> _Answer:
        """Keep Notion's token as a candidate for an operator to confirm; it is trusted for nothing because it
        arrived (``notion_verification``). Refused once verification is closed, or when too many wait."""
        if registration.verification is not VerificationState.OPEN:
            return _Answer(DeliveryOutcome.VERIFICATION_REFUSED, WebhookResponse.error(409, _VERIFICATION_CLOSED))
        token = handshake.verification_token or ""
        reason = implausible(token)
        if reason is not None:
            return _Answer(DeliveryOutcome.MALFORMED, WebhookResponse.error(400, reason))
        if not await self._candidates.offer(registration, token, source=request.source_address):
            waiting = f"{MAX_CANDIDATES} verification tokens already wait for an operator's confirmation"
            return _Answer(DeliveryOutcome.VERIFICATION_REFUSED, WebhookResponse.error(429, waiting))
        log_event(
            "webhook.verification_candidate",
            registration_id=registration.id,
            fingerprint=fingerprint(token),
            source=_shown(request.source_address),
        )
        return _Answer(DeliveryOutcome.HANDSHAKE, _handshake_response(handshake))

    async def _write_audits(self, docs: list[dict[str, Any]]) -> list[CastielError | None]:
        """The audit lines of one event-loop turn, in one store call."""
        return await self._store.create_many(WebhookAudit.container, docs)

    def _audit_written(self, registration_id: str, written: asyncio.Future[CastielError | None]) -> None:
        self._audits_in_flight.discard(written)
        if written.cancelled():
            return
        error = written.exception() or written.result()
        if error is not None:
            # The answer is already decided and the event stored; a lost audit line must not turn it into an error.
            log_event("webhook.audit_failed", registration_id=registration_id, error=str(error))

    def _audit(
        self, registration_id: str, registration: WebhookRegistration | None, answer: _Answer, started: float
    ) -> None:
        """Record the delivery's outcome in ``webhook-audit`` (in the background) and the log."""
        response = answer.response
        audit = WebhookAudit(
            id=new_id(),
            registration_id=registration_id,
            tenant_id=registration.tenant_id if registration else None,
            delivery_id=answer.delivery_id,
            outcome=answer.outcome,
            status_code=response.status,
            reason=answer.detail or _reason(response),
            latency_ms=round((self._clock() - started) * 1000, 3),
            received_at=now_utc(lambda: started),
        )
        written = self._audits.post(audit.to_doc())
        self._audits_in_flight.add(written)
        written.add_done_callback(partial(self._audit_written, registration_id))
        provider = registration.provider.value if registration else "unknown"
        webhook_answered(
            provider=provider,
            tenant=audit.tenant_id,
            outcome=answer.outcome,
            status=response.status,
            latency_ms=audit.latency_ms,
        )
        log_event(
            "webhook.delivery",
            registration_id=registration_id,
            provider=provider,
            outcome=answer.outcome,
            status=response.status,
            delivery_id=_shown(answer.delivery_id),
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    """How one delivery was handled: its audit outcome, the response, the provider's delivery id if known, and
    ``detail``, the audit's reason when it must differ from the response's (a server fault's internals)."""

    outcome: DeliveryOutcome
    response: WebhookResponse
    delivery_id: str | None = None
    detail: str | None = None


def _unavailable(
    outcome: DeliveryOutcome, registration_id: str, exc: CastielError, delivery_id: str | None = None
) -> _Answer:
    """A fault on our side (a backend, a secrets file, the registration's own setup): 503 so the sender retries,
    with a reason that says nothing of our internals; the detail goes to an ERROR log line and the audit."""
    log_event(
        "webhook.unavailable", level=logging.ERROR, registration_id=registration_id, outcome=outcome, error=str(exc)
    )
    return _Answer(outcome, WebhookResponse.error(503, UNAVAILABLE_REASON), delivery_id, detail=str(exc))


def _shown(value: str | None) -> str | None:
    return None if value is None else printable(value)


def _is_unsigned_notion_verification(registration: WebhookRegistration, request: WebhookRequest) -> bool:
    return registration.provider is Provider.NOTION and "x-notion-signature" not in request.headers


def _handshake_response(handshake: Handshake) -> WebhookResponse:
    return WebhookResponse(status=handshake.status_code, body=handshake.body, content_type=handshake.content_type)


def _reason(response: WebhookResponse) -> str | None:
    if response.status < 400:
        return None
    try:
        return str(orjson.loads(response.body).get("error"))
    except (orjson.JSONDecodeError, AttributeError):
        return None
