"""The ``MessageQueue`` on Azure Service Bus (``azure-servicebus`` aio), for production.

One sender per queue and one peek-lock receiver per queue and sub-queue are opened on first use and reused; a
received SDK message is kept by lock token so ``complete``/``abandon``/``dead_letter``/``renew_lock`` settle it on
the receiver that holds its lock. Duplicate detection, scheduling, lock duration and max delivery count are the
queue's own properties (``infra/main.bicep``).

``send`` fills successive ``create_message_batch()`` batches, each within the size the broker allows a message (256
KB on the Standard tier), and sends them in order: a long list (the webhook receiver merges every request of an
event-loop turn into one send) is never refused for its total size. Every batch is filled before the first is sent,
so a single message too large for any batch fails the send with nothing sent; a failure between batches leaves the
earlier ones sent, and the caller's retry re-sends them under the same message ids, which duplicate detection drops.

SDK errors become ``castiel.errors`` types at this boundary, by the table ``ERRORS`` (``castiel.error_table``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, AsyncExitStack
from datetime import UTC, datetime
from typing import TypeVar, overload

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity.aio import DefaultAzureCredential
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch, ServiceBusReceivedMessage, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver, ServiceBusSender
from azure.servicebus.aio.management import ServiceBusAdministrationClient
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageSizeExceededError,
    MessagingEntityDisabledError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
    ServiceBusQuotaExceededError,
    ServiceBusServerBusyError,
    SessionLockLostError,
)

from castiel.clock import Clock, now_utc, system_clock
from castiel.error_table import ErrorTable, Rule
from castiel.errors import ConfigError, InvalidMessage, LockLost, RetryableError
from castiel.ports import OutgoingMessage, PropertyValue, QueueStats, ReceivedMessage, SubQueue
from castiel.settings import Settings

T = TypeVar("T")
Link = TypeVar("Link", ServiceBusSender, ServiceBusReceiver)

# The SDK refuses a zero wait; this is the shortest receive that still lets a waiting message arrive.
_SHORTEST_WAIT_SECONDS = 0.5
# Service Bus copies the dead-letter fields into the application properties; ReceivedMessage has them as fields.
_BROKER_PROPERTIES = frozenset({"DeadLetterReason", "DeadLetterErrorDescription"})
_NOT_SET = datetime.min.replace(tzinfo=UTC)

ERRORS = ErrorTable(
    "Service Bus",
    [
        Rule((MessageLockLostError, SessionLockLostError, MessageAlreadySettled), LockLost, "lost the lock"),
        Rule(
            (MessagingEntityNotFoundError, ResourceNotFoundError),
            ConfigError,
            "has no such queue (SERVICE_BUS_QUEUE / infra/main.bicep)",
        ),
        Rule((MessagingEntityDisabledError,), ConfigError, "has the queue disabled"),
        Rule(
            (ServiceBusAuthenticationError, ServiceBusAuthorizationError, ClientAuthenticationError),
            ConfigError,
            "refused access (check ServiceBusConnection or the managed identity's role)",
        ),
        Rule((MessageSizeExceededError,), InvalidMessage, "refused a message too large for the queue"),
        Rule(
            (
                ServiceBusConnectionError,
                ServiceBusCommunicationError,
                ServiceBusServerBusyError,
                ServiceBusQuotaExceededError,
                OperationTimeoutError,
                ServiceRequestError,
                ServiceResponseError,
            ),
            RetryableError,
            "unavailable",
        ),
        # Whatever else the SDK raises after its own retries is treated as transient: the worker backs off.
        Rule((ServiceBusError, AzureError), RetryableError, "failed"),
    ],
)
"""What each Service Bus failure becomes (the most specific matching rule wins)."""


def _translated(queue: str) -> AbstractContextManager[None]:
    return ERRORS.translating(f"queue {queue!r}")


class ServiceBusMessageQueue:
    """A ``MessageQueue`` on Azure Service Bus queues."""

    def __init__(
        self,
        client: ServiceBusClient,
        admin: ServiceBusAdministrationClient,
        *,
        credential: AsyncTokenCredential | None = None,
        clock: Clock = system_clock,
    ) -> None:
        """Use ``client`` and ``admin`` (closed with this queue, as is ``credential`` when given)."""
        self._client = client
        self._admin = admin
        self._credential = credential
        self._clock = clock
        self._links = AsyncExitStack()
        self._opening = asyncio.Lock()
        self._senders: dict[str, ServiceBusSender] = {}
        self._receivers: dict[tuple[str, SubQueue | None], ServiceBusReceiver] = {}
        self._held: dict[str, tuple[ServiceBusReceiver, ServiceBusReceivedMessage]] = {}

    @classmethod
    def from_connection_string(cls, connection_string: str, *, clock: Clock = system_clock) -> ServiceBusMessageQueue:
        """Connect with a SAS connection string (or the emulator's)."""
        return cls(
            ServiceBusClient.from_connection_string(connection_string),
            ServiceBusAdministrationClient.from_connection_string(connection_string),
            clock=clock,
        )

    @classmethod
    def from_namespace(
        cls,
        fully_qualified_namespace: str,
        credential: AsyncTokenCredential | None = None,
        *,
        clock: Clock = system_clock,
    ) -> ServiceBusMessageQueue:
        """Connect to ``<name>.servicebus.windows.net`` with ``credential`` (the process's shared one, not closed
        here), or a ``DefaultAzureCredential`` of its own (closed with the queue)."""
        own = None
        if credential is None:
            credential = own = DefaultAzureCredential()
        return cls(
            ServiceBusClient(fully_qualified_namespace, credential),
            ServiceBusAdministrationClient(fully_qualified_namespace, credential),
            credential=own,
            clock=clock,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, credential: AsyncTokenCredential | None = None, *, clock: Clock = system_clock
    ) -> ServiceBusMessageQueue:
        """``ServiceBusConnection`` as a connection string, else ``ServiceBusConnection__fullyQualifiedNamespace``
        with ``credential`` (see ``from_namespace``)."""
        if settings.service_bus_connection is not None:
            return cls.from_connection_string(settings.service_bus_connection, clock=clock)
        if settings.service_bus_namespace is not None:
            return cls.from_namespace(settings.service_bus_namespace, credential, clock=clock)
        raise ConfigError("ServiceBusConnection or ServiceBusConnection__fullyQualifiedNamespace must be set")

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Send ``messages`` in order, in as many batches as their size needs (see the module docstring)."""
        if not messages:
            return
        with _translated(queue):
            sender = await self._open(self._senders, queue, lambda: self._client.get_queue_sender(queue))
            batches = [await sender.create_message_batch()]
            for message in messages:
                if not _fits(batches[-1], message):
                    batches.append(await sender.create_message_batch())
                    if not _fits(batches[-1], message):
                        limit = f"{batches[-1].max_size_in_bytes} bytes"
                        raise InvalidMessage(
                            f"queue {queue!r}: message {message.message_id} is over the {limit} allowed"
                        )
            for batch in batches:
                await sender.send_messages(batch)

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        max_wait_seconds: float = 0.0,
        sub_queue: SubQueue | None = None,
    ) -> list[ReceivedMessage]:
        """Peek-lock up to ``max_messages``, waiting up to ``max_wait_seconds`` (at least the SDK's minimum)."""
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        with _translated(queue):
            receiver = await self._receiver(queue, sub_queue)
            batch = await receiver.receive_messages(
                max_message_count=max_messages, max_wait_time=max(max_wait_seconds, _SHORTEST_WAIT_SECONDS)
            )
        self._forget_expired()
        for message in batch:
            self._held[str(message.lock_token)] = (receiver, message)
        return [_received(message, locked=True) for message in batch]

    async def complete(self, queue: str, message: ReceivedMessage) -> None:
        """Remove the message for good."""
        await self._settle(queue, message, lambda receiver, held: receiver.complete_message(held))

    async def abandon(self, queue: str, message: ReceivedMessage) -> None:
        """Release the lock; the broker redelivers or, at max delivery count, dead-letters it."""
        await self._settle(queue, message, lambda receiver, held: receiver.abandon_message(held))

    async def dead_letter(
        self, queue: str, message: ReceivedMessage, *, reason: str, description: str | None = None
    ) -> None:
        """Move the message to the dead-letter sub-queue with ``reason`` and ``description``."""
        await self._settle(
            queue, message, lambda receiver, held: receiver.dead_letter_message(held, reason, description)
        )

    async def renew_lock(self, queue: str, message: ReceivedMessage) -> datetime:
        """Extend the lock by the queue's lock duration."""
        locked_until = await self._settle(
            queue, message, lambda receiver, held: receiver.renew_message_lock(held), final=False
        )
        return _utc(locked_until)

    async def peek(
        self, queue: str, *, max_messages: int = 10, sub_queue: SubQueue | None = None
    ) -> list[ReceivedMessage]:
        """Browse from the first sequence number without locking."""
        with _translated(queue):
            receiver = await self._receiver(queue, sub_queue)
            batch = await receiver.peek_messages(max_message_count=max_messages, sequence_number=1)
        return [_received(message, locked=False) for message in batch]

    async def stats(self, queue: str) -> QueueStats:
        """The queue's runtime message counts from the administration API."""
        with _translated(queue):
            properties = await self._admin.get_queue_runtime_properties(queue)
        return QueueStats(
            active=properties.active_message_count or 0,
            scheduled=properties.scheduled_message_count or 0,
            dead_lettered=properties.dead_letter_message_count or 0,
        )

    async def close(self) -> None:
        """Close every sender and receiver, then the clients and the credential."""
        await self._links.aclose()
        await self._client.close()
        await self._admin.close()
        if self._credential is not None:
            await self._credential.close()

    async def _receiver(self, queue: str, sub_queue: SubQueue | None) -> ServiceBusReceiver:
        sdk_sub_queue = ServiceBusSubQueue.DEAD_LETTER if sub_queue == "dead_letter" else None
        return await self._open(
            self._receivers,
            (queue, sub_queue),
            lambda: self._client.get_queue_receiver(queue, sub_queue=sdk_sub_queue),
        )

    async def _open(self, links: dict[T, Link], key: T, create: Callable[[], Link]) -> Link:
        """The open link under ``key``, opening it once even when many callers ask at the same time."""
        link = links.get(key)
        if link is None:
            async with self._opening:
                link = links.get(key)
                if link is None:
                    link = await self._links.enter_async_context(create())
                    links[key] = link
        return link

    async def _settle(
        self,
        queue: str,
        message: ReceivedMessage,
        action: Callable[[ServiceBusReceiver, ServiceBusReceivedMessage], Awaitable[T]],
        *,
        final: bool = True,
    ) -> T:
        """Run ``action`` on the SDK message behind ``message``; forget it once settled or its lock is lost."""
        token = message.lock_token
        held = self._held.get(token) if token is not None else None
        if token is None or held is None:
            raise LockLost(
                f"message {message.message_id} of queue {queue!r} is not locked by this receiver "
                "(peeked, already settled, or its lock expired)"
            )
        try:
            with _translated(queue):
                result = await action(*held)
        except LockLost:
            self._held.pop(token, None)
            raise
        if final:
            self._held.pop(token, None)
        return result

    def _forget_expired(self) -> None:
        """Drop SDK messages whose lock has passed, so unsettled ones never accumulate."""
        now = now_utc(self._clock)
        for token, (_, message) in list(self._held.items()):
            locked_until = _utc(message.locked_until_utc)
            if locked_until is None or locked_until <= now:
                del self._held[token]


def _fits(batch: ServiceBusMessageBatch, message: OutgoingMessage) -> bool:
    """Add ``message`` to ``batch`` when it fits; False when it would take the batch past its size."""
    try:
        batch.add_message(_outgoing(message))
    except MessageSizeExceededError:
        return False
    return True


def _outgoing(message: OutgoingMessage) -> ServiceBusMessage:
    properties: dict[str | bytes, PropertyValue | bytes | uuid.UUID] = {
        key: value for key, value in message.application_properties.items()
    }
    return ServiceBusMessage(
        message.body,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        application_properties=properties,
        content_type=message.content_type,
        scheduled_enqueue_time_utc=message.scheduled_enqueue_time,
    )


def _received(message: ServiceBusReceivedMessage, *, locked: bool) -> ReceivedMessage:
    # The AMQP header counts earlier failed deliveries; a locked message is one more delivery (as .NET reports it).
    earlier = message.delivery_count or 0
    return ReceivedMessage(
        body=_body(message),
        message_id=message.message_id or "",
        sequence_number=message.sequence_number or 0,
        delivery_count=earlier + 1 if locked else earlier,
        enqueued_time=_utc(message.enqueued_time_utc) or _NOT_SET,
        correlation_id=message.correlation_id,
        application_properties=_properties(message.application_properties or {}),
        content_type=message.content_type,
        lock_token=str(message.lock_token) if locked else None,
        locked_until=_utc(message.locked_until_utc) if locked else None,
        scheduled_enqueue_time=_utc(message.scheduled_enqueue_time_utc),
        dead_letter_reason=message.dead_letter_reason,
        dead_letter_description=message.dead_letter_error_description,
    )


def _body(message: ServiceBusReceivedMessage) -> bytes:
    if message.body_type == AmqpMessageBodyType.DATA:
        return b"".join(message.body)
    # A value or sequence body comes from another producer; its text form is the most useful bytes.
    return str(message).encode()


def _properties(raw: Mapping[str | bytes, object]) -> dict[str, PropertyValue]:
    """Received properties with ``str`` keys and text values (the SDK returns both as ``bytes``)."""
    properties: dict[str, PropertyValue] = {}
    for raw_key, raw_value in raw.items():
        key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        if key in _BROKER_PROPERTIES:
            continue
        if isinstance(raw_value, bytes):
            properties[key] = raw_value.decode()
        elif isinstance(raw_value, str | int | float | bool):
            properties[key] = raw_value
        else:
            properties[key] = str(raw_value)
    return properties


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: datetime | None) -> datetime | None:
    """The SDK's times as aware UTC (it documents UTC but does not promise a tzinfo)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
