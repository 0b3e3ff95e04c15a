"""Service Bus sends in batches the broker accepts (issue 16 item 3), tested on the SDK's own sender, batch and message
types: a real ``ServiceBusSender`` whose AMQP link is replaced by a recorder (Service Bus speaks AMQP, not HTTP, so
there is no transport seam to answer), with the Standard tier's 256 KB limit on the link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus.aio import ServiceBusSender

from castiel.backends.servicebus import ServiceBusMessageQueue
from castiel.errors import InvalidMessage
from castiel.ports import OutgoingMessage

STANDARD_TIER_BYTES = 256 * 1024


class RecordingSender(ServiceBusSender):
    """The SDK's sender with its link replaced: what ``send_messages`` would put on the wire is recorded."""

    def __init__(self, queue: str, sent: list[ServiceBusMessageBatch | ServiceBusMessage]) -> None:
        credential = AzureNamedKeyCredential("castiel", "not-a-key")
        super().__init__(fully_qualified_namespace="castiel.servicebus.windows.net", credential=credential,
                         queue_name=queue)  # fmt: skip
        self.sent = sent

    async def _open_with_retry(self) -> None:
        # What the link tells the SDK once attached: the broker's limit for one message (a batch is one message).
        self._max_message_size_on_link = STANDARD_TIER_BYTES
        self._max_batch_size_on_link = STANDARD_TIER_BYTES
        self._running = True

    async def _send(
        self,
        message: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (the SDK's own signature)
        last_exception: Exception | None = None,
    ) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        self._running = False


class Client:
    """What the queue asks of a ``ServiceBusClient`` to send: a sender per queue."""

    def __init__(self) -> None:
        self.sent: list[ServiceBusMessageBatch | ServiceBusMessage] = []

    def get_queue_sender(self, queue: str) -> RecordingSender:
        return RecordingSender(queue, self.sent)

    async def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
async def queue() -> AsyncIterator[tuple[ServiceBusMessageQueue, Client]]:
    client = Client()
    service_bus = ServiceBusMessageQueue(client, Client())  # type: ignore[arg-type]
    yield service_bus, client
    await service_bus.close()


def change(n: int, size: int) -> OutgoingMessage:
    return OutgoingMessage(
        body=b"x" * size,
        message_id=f"change-{n}",
        correlation_id="corr-1",
        application_properties={"retryCount": 0},
        content_type="application/json",
    )


def sent_ids(sent: list[ServiceBusMessageBatch | ServiceBusMessage]) -> list[list[str]]:
    assert all(isinstance(batch, ServiceBusMessageBatch) for batch in sent)
    return [[message.message_id for message in batch._messages] for batch in sent]  # type: ignore[union-attr]


async def test_a_send_larger_than_one_batch_goes_out_in_successive_batches_in_order(
    queue: tuple[ServiceBusMessageQueue, Client],
) -> None:
    service_bus, client = queue
    messages = [change(n, 60_000) for n in range(10)]  # ~600 KB: more than two batches' worth

    await service_bus.send("sync-outbound", messages)

    batches = sent_ids(client.sent)
    assert len(batches) == 3
    assert [message_id for batch in batches for message_id in batch] == [m.message_id for m in messages]
    assert all(batch.size_in_bytes <= STANDARD_TIER_BYTES for batch in client.sent)  # type: ignore[union-attr]


async def test_a_small_send_is_one_batch_with_the_message_fields_mapped(
    queue: tuple[ServiceBusMessageQueue, Client],
) -> None:
    service_bus, client = queue

    await service_bus.send("sync-outbound", [change(1, 100), change(2, 100)])

    [batch] = client.sent
    first = batch._messages[0]  # type: ignore[union-attr]
    assert (first.message_id, first.correlation_id, first.content_type) == ("change-1", "corr-1", "application/json")
    assert first.application_properties == {"retryCount": 0}
    assert b"".join(first.body) == b"x" * 100


async def test_one_message_larger_than_any_batch_is_refused_and_nothing_is_sent(
    queue: tuple[ServiceBusMessageQueue, Client],
) -> None:
    service_bus, client = queue

    with pytest.raises(InvalidMessage, match=r"change-1 is over the \d+ bytes allowed"):
        await service_bus.send("sync-outbound", [change(0, 100), change(1, STANDARD_TIER_BYTES + 1), change(2, 100)])

    assert client.sent == []
