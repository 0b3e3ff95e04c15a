"""Trigger inputs as the real ``azure.functions`` objects the Functions worker passes, and HTTP results back.

A function run by the dev host sees exactly the types it sees under ``func start``: ``func.HttpRequest``,
``azure.functions.timer.TimerRequest``, ``azure.functions.servicebus.ServiceBusMessage`` — or, with the Service Bus
SDK-type binding, ``azure.servicebus.ServiceBusReceivedMessage`` decoded by that extension's own converter from the
AMQP bytes the host sends, and ``ServiceBusMessageActions`` settling on the embedded queue — and a ``func.Context``
when it declares a ``context`` parameter.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from asyncio import AbstractEventLoop
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qsl

import azure.functions as func
import uamqp
from azure.functions._abc import RetryContext, RpcException, TraceContext
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest
from azure.servicebus import ServiceBusReceivedMessage
from azurefunctions.extensions.base import Datum
from azurefunctions.extensions.bindings.servicebus import ServiceBusConverter, ServiceBusMessageActions

from castiel.ports import MessageQueue, ReceivedMessage


def http_request_from(scope: Mapping[str, Any], route_params: dict[str, str], body: bytes) -> func.HttpRequest:
    """An ASGI request, its route parameters and its body as ``func.HttpRequest``.

    Repeated headers are joined with ``, ``; the URL is rebuilt from the ``Host`` header (else the server address);
    the client's address is appended to ``X-Forwarded-For``.
    """
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if scope.get("client"):
        # As Azure's front ends do, the peer is appended to X-Forwarded-For: the Functions worker has no other way
        # to tell a function where a request came from (castiel.triggers.source_address reads it back).
        client_host, client_port = scope["client"]
        peer = f"[{client_host}]:{client_port}" if ":" in client_host else f"{client_host}:{client_port}"
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {peer}" if forwarded else peer
    query = scope.get("query_string", b"").decode("latin-1")
    host = headers.get("host")
    if host is None:
        server_host, server_port = scope["server"]
        host = f"{server_host}:{server_port}"
    return func.HttpRequest(
        method=scope["method"],
        url=f"{scope.get('scheme', 'http')}://{host}{scope['path']}{'?' + query if query else ''}",
        headers=headers,
        params=dict(parse_qsl(query, keep_blank_values=True)) if query else {},
        route_params=route_params,
        body=body,
    )


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What to send back: status, body, content type (None: no header) and further headers."""

    status: int
    body: bytes
    content_type: str | None
    headers: Mapping[str, str]


_TEXT = "text/plain; charset=utf-8"
_HOST_HEADERS = frozenset({"content-type", "content-length"})


def answer_from(result: object) -> HttpAnswer:
    """An HTTP function's return value as the answer (``None`` is 204, ``str``/``bytes`` a 200 text body)."""
    if isinstance(result, func.HttpResponse):
        # The host writes the body's length itself; a function's own Content-Length could only contradict it.
        headers = {name: value for name, value in result.headers.items() if name.lower() not in _HOST_HEADERS}
        content_type = result.headers.get("content-type") or _with_charset(result.mimetype, result.charset)
        return HttpAnswer(result.status_code, result.get_body(), content_type, headers)
    if result is None:
        return HttpAnswer(204, b"", None, {})
    if isinstance(result, str):
        return HttpAnswer(200, result.encode(), _TEXT, {})
    if isinstance(result, bytes):
        return HttpAnswer(200, result, _TEXT, {})
    raise TypeError(f"an HTTP function returned {type(result).__name__}, not func.HttpResponse, str or bytes")


def _with_charset(mimetype: str, charset: str) -> str:
    # The rule of the Functions worker's encoder (azure.functions.http): a text type carries its charset.
    return f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype


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


class _TraceContext(TraceContext):
    def __init__(self, traceparent: str) -> None:
        self._traceparent = traceparent

    @property
    def trace_parent(self) -> str:
        return self._traceparent

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _NoException(RpcException):
    source = stack_trace = message = ""


class _FirstTry(RetryContext):
    """The dev host runs no function-level retry policy (none is declared): every invocation is a first try."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> RpcException:
        return _NoException()


class InvocationContext(func.Context):
    """The ``context`` argument: invocation id, function name and directory, and the trace context the invocation
    continues (the message's or request's ``traceparent``; empty when it starts a trace)."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str, traceparent: str | None):
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace = _TraceContext(traceparent or "")
        self._local = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        # The worker hands out a threading.local instance; the ABC's annotation names the class.
        return cast("type[threading.local]", self._local)

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace

    @property
    def retry_context(self) -> RetryContext:
        return _FirstTry()


_LOCK_TOKEN_MARK = b"x-opt-lock-token"


@dataclass(frozen=True, slots=True)
class _ModelBindingData:
    """What the host sends for an SDK-type Service Bus trigger: the lock token, a marker, the AMQP message."""

    content: bytes
    version: str = "1.0"
    source: str = "AzureServiceBusReceivedMessage"
    content_type: str = "application/octet-stream"


def sdk_message_from(message: ReceivedMessage) -> ServiceBusReceivedMessage:
    """A peek-locked queue message as the SDK-type trigger argument, through the extension's ``ServiceBusConverter``
    from the bytes the host would send (lock token, then the AMQP-encoded message), so the function gets what the
    worker gives it."""
    properties = uamqp.message.MessageProperties(
        message_id=message.message_id, correlation_id=message.correlation_id, content_type=message.content_type
    )
    header = uamqp.message.MessageHeader()
    header.delivery_count = message.delivery_count
    annotations: dict[bytes, object] = {
        b"x-opt-sequence-number": message.sequence_number,
        b"x-opt-enqueued-time": round(message.enqueued_time.timestamp() * 1000),
    }
    if message.locked_until is not None:
        annotations[b"x-opt-locked-until"] = round(message.locked_until.timestamp() * 1000)
    amqp = uamqp.Message(
        message.body,
        properties=properties,
        application_properties=dict(message.application_properties),
        annotations=annotations,
        header=header,
    )
    lock = uuid.UUID(hex=message.lock_token) if message.lock_token else uuid.UUID(int=0)
    data = Datum(_ModelBindingData(lock.bytes_le + _LOCK_TOKEN_MARK + amqp.encode_message()), "model_binding_data")
    decoded: ServiceBusReceivedMessage = ServiceBusConverter.decode(data, trigger_metadata={}, pytype=None)
    return decoded


class QueueMessageActions(ServiceBusMessageActions):  # type: ignore[misc]
    """The message actions of one invocation, settling its message on the runtime's queue as the worker's settlement
    client settles on Service Bus. Called from a worker thread, as the function does (the real client blocks on
    gRPC), each action runs on the host's event loop. ``outcome`` is what was done, None until something was."""

    def __init__(self, queue: MessageQueue, queue_name: str, message: ReceivedMessage, loop: AbstractEventLoop):
        # Not the base initialiser: it connects to the Functions host's gRPC settlement service.
        self._queue = queue
        self._queue_name = queue_name
        self._message = message
        self._loop = loop
        self.outcome: str | None = None

    def complete(self, message: ServiceBusReceivedMessage) -> None:
        """Remove the message."""
        self._settle(message, "succeeded", self._queue.complete(self._queue_name, self._message))

    def abandon(self, message: ServiceBusReceivedMessage) -> None:
        """Release the lock for a redelivery."""
        self._settle(message, "abandoned", self._queue.abandon(self._queue_name, self._message))

    def deadletter(
        self,
        message: ServiceBusReceivedMessage,
        deadletter_reason: str | None = None,
        deadletter_error_description: str | None = None,
    ) -> None:
        """Move the message to the dead-letter sub-queue with its reason."""
        settled = self._queue.dead_letter(
            self._queue_name, self._message, reason=deadletter_reason or "", description=deadletter_error_description
        )
        self._settle(message, "dead_lettered", settled)

    def renew_message_lock(self, message: ServiceBusReceivedMessage) -> None:
        """Extend the lock (the host renews it anyway while the function runs)."""
        self._check(message)
        asyncio.run_coroutine_threadsafe(self._queue.renew_lock(self._queue_name, self._message), self._loop).result()

    def defer(self, message: ServiceBusReceivedMessage) -> None:
        """Deferral needs a receiver that reads deferred messages back by sequence number; nothing here does."""
        raise NotImplementedError("the embedded queue does not defer messages")

    def _settle(self, message: ServiceBusReceivedMessage, outcome: str, settled: Coroutine[Any, Any, None]) -> None:
        try:
            self._check(message)
        except ValueError:
            settled.close()
            raise
        asyncio.run_coroutine_threadsafe(settled, self._loop).result()
        self.outcome = outcome

    def _check(self, message: ServiceBusReceivedMessage) -> None:
        if str(message.lock_token).replace("-", "") != self._message.lock_token:
            raise ValueError(f"message {message.message_id} is not the one this invocation holds the lock of")
