"""Service Bus queue triggers on the runtime's ``MessageQueue``, under peek-lock, settled like the Functions host.

One pump per queue-triggered function keeps up to ``maxConcurrentCalls`` invocations in flight: it receives only as
many messages as it has free slots, so no message sits locked while waiting for a slot. The lock is renewed every
half lock duration while the function runs. Settlement follows what the function did (``castiel/settlement.py``),
applied by the function itself through message actions (SDK-type binding, ``auto_complete`` off) or by the pump.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from castiel.clock import Clock, now_utc, system_clock
from castiel.devhost.convert import QueueMessageActions, sdk_message_from, service_bus_message_from
from castiel.devhost.invocation import Invocation, Outcome
from castiel.devhost.lifecycle import sleep_unless_stopped
from castiel.devhost.loader import SETTLEMENT, HostedFunction, QueueBinding
from castiel.errors import CastielError, LockLost
from castiel.ports import MessageQueue, ReceivedMessage
from castiel.settlement import SettlementAction, settlement_for, typed_message
from castiel.telemetry import log_event
from castiel.telemetry.spans import TRACEPARENT

# How long an idle receive waits: it bounds how soon a pump notices a stop, without spinning.
RECEIVE_WAIT_SECONDS = 1.0
_MIN_RENEW_INTERVAL_SECONDS = 0.5


class QueuePump:
    """Feeds one queue-triggered function from its queue until told to stop, then lets in-flight calls finish."""

    def __init__(
        self,
        function: HostedFunction,
        queue: MessageQueue,
        *,
        max_concurrent_calls: int,
        max_delivery_count: int,
        timeout: float | None,
        receive_wait_seconds: float = RECEIVE_WAIT_SECONDS,
        clock: Clock = system_clock,
    ) -> None:
        binding = function.binding
        assert isinstance(binding, QueueBinding)
        self._binding = binding
        self._function = function
        self._queue = queue
        self._queue_name = binding.queue_name
        self._max_concurrent = max_concurrent_calls
        self._max_delivery_count = max_delivery_count
        self._timeout = timeout
        self._receive_wait = receive_wait_seconds
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and dispatch until ``stop`` is set; return when every dispatched message is settled.

        Cancelled (the shutdown grace period is over), it cancels the invocations in flight too; their messages stay
        unsettled and are redelivered when their locks expire, as after a crash.
        """
        in_flight: set[asyncio.Task[None]] = set()
        try:
            await self._pump(stop, in_flight)
        except asyncio.CancelledError:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise

    async def _pump(self, stop: asyncio.Event, in_flight: set[asyncio.Task[None]]) -> None:
        while not stop.is_set():
            free = self._max_concurrent - len(in_flight)
            if free <= 0:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                messages = await self._queue.receive(
                    self._queue_name, max_messages=free, max_wait_seconds=self._receive_wait
                )
            except CastielError as exc:
                log_event(
                    "devhost.receive_failed", level=logging.WARNING, queue=self._queue_name, error=typed_message(exc)
                )
                await sleep_unless_stopped(stop, self._receive_wait)
                continue
            # Messages received while stopping are locked already: they run too, rather than wait out their lock.
            for message in messages:
                task = asyncio.create_task(self.process(message))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight)

    async def process(self, message: ReceivedMessage) -> None:
        """Run the function on one locked message and settle it; never raises.

        A function that settles its message itself (message actions, ``auto_complete`` off) is given
        ``QueueMessageActions`` on this queue, and its message is settled by what it did with them; if it did
        nothing, its message is left to its lock, as the Functions host leaves it.
        """
        traceparent = message.application_properties.get(TRACEPARENT)
        invocation = Invocation(self._function, message.correlation_id, self._timeout, str(traceparent or "") or None)
        actions = QueueMessageActions(self._queue, self._queue_name, message, asyncio.get_running_loop())
        argument = sdk_message_from(message) if self._binding.sdk_message else service_bus_message_from(message)
        error: Exception | None = None
        renewal = asyncio.create_task(self._keep_locked(message))
        try:
            await invocation.call(argument, **{SETTLEMENT: actions})
        except Exception as exc:
            error = exc
        finally:
            renewal.cancel()
        if actions.outcome is not None:
            invocation.finish(cast(Outcome, actions.outcome), error)
            return
        if not self._binding.auto_complete:
            log_event("devhost.unsettled", level=logging.WARNING, queue=self._queue_name, message_id=message.message_id)
            invocation.finish("abandoned", error)
            return
        try:
            outcome = await self._settle(message, error)
        except CastielError as exc:
            # The lock was lost or the queue failed: the message is redelivered when its lock expires.
            log_event(
                "devhost.settle_failed",
                level=logging.WARNING,
                queue=self._queue_name,
                message_id=message.message_id,
                error=typed_message(exc),
            )
            invocation.finish("failed", error or exc)
            return
        invocation.finish(outcome, error)

    async def _settle(self, message: ReceivedMessage, error: Exception | None) -> Outcome:
        settlement = settlement_for(
            error,
            function=self._function.name,
            queue=self._queue_name,
            delivery_count=message.delivery_count,
            max_delivery_count=self._max_delivery_count,
        )
        if settlement.action is SettlementAction.COMPLETE:
            await self._queue.complete(self._queue_name, message)
            return "succeeded"
        if settlement.action is SettlementAction.ABANDON:
            await self._queue.abandon(self._queue_name, message)
            return "abandoned"
        reason = settlement.reason or ""
        await self._queue.dead_letter(self._queue_name, message, reason=reason, description=settlement.description)
        return "dead_lettered"

    async def _keep_locked(self, message: ReceivedMessage) -> None:
        if message.locked_until is None:
            return
        lock_seconds = (message.locked_until - now_utc(self._clock)).total_seconds()
        interval = max(lock_seconds / 2, _MIN_RENEW_INTERVAL_SECONDS)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._queue.renew_lock(self._queue_name, message)
            except LockLost as exc:
                log_event("devhost.lock_lost", level=logging.WARNING, message_id=message.message_id, error=str(exc))
                return
            except CastielError as exc:
                # A transient failure: the lock still has half its duration, so try again next interval.
                log_event("devhost.renew_failed", level=logging.WARNING, message_id=message.message_id, error=str(exc))
