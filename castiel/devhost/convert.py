"""Trigger inputs as the real ``azure.functions`` objects the Functions worker passes, and HTTP results back.

A function run by the dev host sees exactly the types it sees under ``func start``: ``func.HttpRequest``,
``azure.functions.timer.TimerRequest``, ``azure.functions.servicebus.ServiceBusMessage``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest
from starlette.requests import Request
from starlette.responses import Response

from castiel.ports import ReceivedMessage


def http_request_from(request: Request, body: bytes) -> func.HttpRequest:
    """A Starlette request and its body as ``func.HttpRequest``; repeated headers are joined with ``, ``."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=headers,
        params=dict(request.query_params),
        route_params={name: str(value) for name, value in request.path_params.items()},
        body=body,
    )


def response_from(result: object) -> Response:
    """An HTTP function's return value as a Starlette response (``None`` is 204, ``str``/``bytes`` a 200 body)."""
    if isinstance(result, func.HttpResponse):
        return Response(
            content=result.get_body(),
            status_code=result.status_code,
            headers=dict(result.headers),
            media_type=result.mimetype,
        )
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str | bytes):
        return Response(content=result, media_type="text/plain")
    raise TypeError(f"an HTTP function returned {type(result).__name__}, not func.HttpResponse, str or bytes")


def timer_request(*, past_due: bool, last: datetime | None, next_fire: datetime) -> TimerRequest:
    """A timer invocation's argument; ``schedule_status`` carries Last/Next like the host's monitor does."""
    status: dict[str, Any] = {"Next": next_fire.isoformat()}
    if last is not None:
        status["Last"] = last.isoformat()
    return TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": False})


def service_bus_message_from(message: ReceivedMessage) -> ServiceBusMessage:
    """A peek-locked queue message as the Service Bus trigger's ``ServiceBusMessage``.

    ``user_properties`` repeats the application properties, as extension 5.x does for older code.
    """
    properties = dict(message.application_properties)
    return ServiceBusMessage(
        body=message.body,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        application_properties=properties,
        user_properties=dict(properties),
        content_type=message.content_type,
        delivery_count=message.delivery_count,
        enqueued_time_utc=message.enqueued_time,
        scheduled_enqueue_time_utc=message.scheduled_enqueue_time,
        sequence_number=message.sequence_number,
        lock_token=message.lock_token,
        locked_until=message.locked_until,
    )
