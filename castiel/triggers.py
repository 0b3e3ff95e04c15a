"""The Functions edge: ``azure.functions`` trigger types to core types and back, and each invocation's span.

Only ``function_app.py`` and the dev host use this module; services never see ``azure.functions``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager

import azure.functions as func
from azure.servicebus import ServiceBusReceivedMessage
from azurefunctions.extensions.bindings.servicebus import ServiceBusMessageActions
from opentelemetry.trace import Span, SpanKind

from castiel.ports import PropertyValue
from castiel.settlement import Settlement, SettlementAction, settlement_for
from castiel.sync.delivery import Delivery
from castiel.telemetry import spans
from castiel.webhooks.receiver import WebhookRequest, WebhookResponse


@contextmanager
def invocation(context: func.Context, *, correlation_id: str | None = None) -> Iterator[Span]:
    """The span of one timer or HTTP invocation (``telemetry.spans.invocation``), in the trace the host started."""
    with _span(context, SpanKind.SERVER, correlation_id) as span:
        yield span


@contextmanager
def message_invocation(context: func.Context, delivery: Delivery) -> Iterator[Span]:
    """The span of one queue-triggered invocation, under the message's correlation id, continuing the host's trace
    or else the sender's (the ``traceparent`` the message carries)."""
    sent = delivery.application_properties.get(spans.TRACEPARENT)
    with _span(context, SpanKind.CONSUMER, delivery.correlation_id, sent if isinstance(sent, str) else None) as span:
        yield span


async def settle(
    context: func.Context,
    message: ServiceBusReceivedMessage,
    actions: ServiceBusMessageActions,
    handle: Callable[[Delivery], Awaitable[None]],
    *,
    queue: str,
    max_delivery_count: int,
) -> None:
    """Run ``handle`` on the trigger's message in the invocation's span, then settle the message through the
    binding's message actions as ``castiel/settlement.py`` decides: a ``PermanentError`` dead-letters it with its
    reason, on Azure as under ``castiel serve``. A failure is raised again once settled, so the host records the
    invocation as failed (with ``autoCompleteMessages`` off it settles nothing itself).

    The actions block on the host's gRPC settlement service, so they run in a worker thread.
    """
    delivery = delivery_from(message, queue)
    with message_invocation(context, delivery):
        try:
            await handle(delivery)
        except Exception as exc:
            settlement = settlement_for(
                exc,
                function=context.function_name,
                queue=queue,
                delivery_count=delivery.delivery_count,
                max_delivery_count=max_delivery_count,
            )
            await asyncio.to_thread(_apply, actions, message, settlement)
            raise
        await asyncio.to_thread(actions.complete, message)


def _apply(actions: ServiceBusMessageActions, message: ServiceBusReceivedMessage, settlement: Settlement) -> None:
    if settlement.action is SettlementAction.ABANDON:
        actions.abandon(message)
    else:
        actions.deadletter(
            message, deadletter_reason=settlement.reason, deadletter_error_description=settlement.description
        )


@contextmanager
def _span(context: func.Context, kind: SpanKind, correlation_id: str | None, sent: str | None = None) -> Iterator[Span]:
    trace_context = context.trace_context
    with spans.invocation(
        context.function_name,
        kind=kind,
        execution_id=context.invocation_id,
        correlation_id=correlation_id,
        traceparent=(trace_context.trace_parent if trace_context is not None else None) or sent,
    ) as span:
        yield span


def delivery_from(message: ServiceBusReceivedMessage, queue: str) -> Delivery:
    """A Service Bus SDK-type trigger message as a ``Delivery``. Its AMQP application properties arrive with bytes
    keys and string values as bytes; they are decoded, and values of other types dropped."""
    properties: dict[str, PropertyValue] = {}
    for key, value in (message.application_properties or {}).items():
        decoded = value.decode() if isinstance(value, bytes) else value
        if isinstance(decoded, str | int | float | bool):
            properties[key.decode() if isinstance(key, bytes) else str(key)] = decoded
    body = message.body
    return Delivery(
        queue=queue,
        body=body if isinstance(body, bytes) else b"".join(body),
        message_id=str(message.message_id or ""),
        correlation_id=message.correlation_id,
        application_properties=properties,
        delivery_count=message.delivery_count or 1,
    )


def webhook_request_from(request: func.HttpRequest) -> WebhookRequest:
    """An HTTP trigger request as a ``WebhookRequest`` (headers keep their values, names lower-cased)."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    return WebhookRequest(
        registration_id=request.route_params.get("registrationId", ""),
        headers=headers,
        body=request.get_body(),
        source_address=source_address(headers),
    )


def source_address(headers: Mapping[str, str]) -> str | None:
    """Where a request came from, as the nearest proxy recorded it: the last entry of ``X-Forwarded-For``.

    The Functions host passes no peer address to Python; Azure's front ends append the client's ``ip:port`` to
    ``X-Forwarded-For`` instead (and the dev host does the same). Entries before the last are whatever the client
    sent, so they are never taken.
    """
    forwarded = headers.get("x-forwarded-for", "")
    return forwarded.rpartition(",")[2].strip() or None


def http_response(response: WebhookResponse) -> func.HttpResponse:
    """A ``WebhookResponse`` as the HTTP trigger's return value."""
    return func.HttpResponse(
        body=response.body,
        status_code=response.status,
        headers=dict(response.headers),
        mimetype=response.content_type,
    )
