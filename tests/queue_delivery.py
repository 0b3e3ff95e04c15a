"""A queue function's arguments as the Service Bus SDK-type binding gives them, on a runtime's real queue."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from azure.servicebus import ServiceBusReceivedMessage

from castiel.devhost.convert import QueueMessageActions, sdk_message_from
from castiel.ports import MessageQueue, OutgoingMessage, PropertyValue, ReceivedMessage


@dataclass(frozen=True, slots=True)
class Delivered:
    """The locked message, what the function gets for it, and the actions that settle it on the queue."""

    received: ReceivedMessage
    message: ServiceBusReceivedMessage
    actions: QueueMessageActions


async def deliver(
    queue: MessageQueue,
    name: str,
    body: bytes,
    message_id: str = "m-1",
    *,
    correlation_id: str | None = "corr-1",
    properties: Mapping[str, PropertyValue] | None = None,
) -> Delivered:
    """Send ``body`` to ``name`` (a message already there with ``message_id`` is kept: duplicate detection drops the
    copy) and receive it under lock."""
    outgoing = OutgoingMessage(
        body=body, message_id=message_id, correlation_id=correlation_id, application_properties=properties or {}
    )
    await queue.send(name, [outgoing])
    (received,) = await queue.receive(name, max_messages=1)
    actions = QueueMessageActions(queue, name, received, asyncio.get_running_loop())
    return Delivered(received, sdk_message_from(received), actions)
