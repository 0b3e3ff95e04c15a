"""A function on the Service Bus SDK-type binding settles its own message through message actions; the dev host gives
it the extension's own message type and actions on the embedded queue, so settlement is what it is on Azure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import azure.functions as func
import azurefunctions.extensions.bindings.servicebus as servicebus
import pytest
from azure.servicebus import ServiceBusReceivedMessage

from castiel import triggers
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.devhost.loader import SETTLEMENT, QueueBinding, discover
from castiel.devhost.queues import QueuePump
from castiel.errors import PermanentError
from castiel.ports import OutgoingMessage
from castiel.sync.delivery import Delivery

QUEUE = "work"
MAX_DELIVERIES = 2
app = func.FunctionApp()
raised: dict[str, Exception] = {}
seen: list[Delivery] = []


async def handle(delivery: Delivery) -> None:
    seen.append(delivery)
    if delivery.message_id in raised:
        raise raised[delivery.message_id]


@app.service_bus_queue_trigger(arg_name="msg", queue_name=QUEUE, connection="Conn", auto_complete_messages=False)
async def settled(
    msg: servicebus.ServiceBusReceivedMessage, actions: servicebus.ServiceBusMessageActions, context: func.Context
) -> None:
    await triggers.settle(context, msg, actions, handle, queue=QUEUE, max_delivery_count=MAX_DELIVERIES)


@app.service_bus_queue_trigger(arg_name="msg", queue_name=QUEUE, connection="Conn", auto_complete_messages=False)
async def forgetful(msg: servicebus.ServiceBusReceivedMessage, actions: servicebus.ServiceBusMessageActions) -> None:
    assert isinstance(msg, ServiceBusReceivedMessage)


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteMessageQueue]:
    raised.clear()
    seen.clear()
    backend = SqliteMessageQueue(tmp_path / "queue.db", lock_duration_seconds=30.0, max_delivery_count=MAX_DELIVERIES)
    yield backend
    await backend.close()


def pump(queue: SqliteMessageQueue, name: str) -> QueuePump:
    (function,) = discover(app, {name})
    return QueuePump(function, queue, max_concurrent_calls=1, max_delivery_count=MAX_DELIVERIES, timeout=10)


async def run_once(queue: SqliteMessageQueue, name: str = "settled") -> None:
    (message,) = await queue.receive(QUEUE, max_messages=1)
    await pump(queue, name).process(message)


async def send(queue: SqliteMessageQueue, message_id: str) -> None:
    properties = {"castiel-retry-count": 1, "tenantId": "t1"}
    outgoing = OutgoingMessage(b'{"n": 1}', message_id, correlation_id="corr-1", application_properties=properties)
    await queue.send(QUEUE, [outgoing])


def test_the_loader_sees_the_sdk_type_and_the_message_actions() -> None:
    (function,) = discover(app, {"settled"})
    assert function.binding == QueueBinding(QUEUE, sdk_message=True, auto_complete=False)
    assert function.extras == {"context": "context", SETTLEMENT: "actions"}


async def test_a_returning_function_completes_its_message_and_sees_it_whole(queue: SqliteMessageQueue) -> None:
    await send(queue, "ok")
    await run_once(queue)
    assert (await queue.stats(QUEUE)).active == 0
    (delivery,) = seen
    assert (delivery.body, delivery.message_id, delivery.correlation_id) == (b'{"n": 1}', "ok", "corr-1")
    assert delivery.application_properties == {"castiel-retry-count": 1, "tenantId": "t1"}
    assert delivery.retry_count == 1
    assert delivery.delivery_count == 1


async def test_a_permanent_error_dead_letters_the_message_with_its_reason(queue: SqliteMessageQueue) -> None:
    raised["bad"] = PermanentError("task t-1 has no connection")
    await send(queue, "bad")
    await run_once(queue)
    (dead,) = await queue.peek(QUEUE, sub_queue="dead_letter")
    assert dead.dead_letter_reason == "PermanentError: task t-1 has no connection"
    assert dead.dead_letter_description is not None
    assert "settled raised a permanent error on delivery 1" in dead.dead_letter_description


async def test_a_bug_is_abandoned_then_dead_lettered_on_the_last_delivery(queue: SqliteMessageQueue) -> None:
    raised["buggy"] = KeyError("missing")
    await send(queue, "buggy")
    await run_once(queue)
    assert await queue.peek(QUEUE, sub_queue="dead_letter") == []
    await run_once(queue)
    (dead,) = await queue.peek(QUEUE, sub_queue="dead_letter")
    assert dead.dead_letter_reason == "KeyError: 'missing'"
    assert dead.dead_letter_description is not None
    assert f"failed on delivery 2, the max delivery count ({MAX_DELIVERIES})" in dead.dead_letter_description
    assert [delivery.delivery_count for delivery in seen] == [1, 2]


async def test_a_message_its_function_does_not_settle_waits_for_its_lock(queue: SqliteMessageQueue) -> None:
    await send(queue, "kept")
    await run_once(queue, "forgetful")
    stats = await queue.stats(QUEUE)
    assert stats.dead_lettered == 0
    assert await queue.receive(QUEUE, max_messages=1) == []  # still locked: redelivered when the lock expires
