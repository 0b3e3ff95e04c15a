"""Shutdown is bounded: a stop signal gives invocations in flight the grace period, then cuts them and closes every
HTTP connection still open; a second SIGINT stops the host at once. A real ``castiel serve`` process each time."""

from __future__ import annotations

import asyncio
import signal

import orjson

from castiel.ports import OutgoingMessage
from tests.e2e.conftest import WAIT_TIMEOUT, DevHost, StartHost

SLOW_APP = ("--app", "tests.e2e.apps.slow:app")
FOREVER = 3600  # seconds a slow_worker invocation asks for: far past any grace period and test bound


async def start_one_slow_invocation(host: DevHost) -> None:
    """Queue a message whose invocation outlasts every bound here, and wait until the host is running it."""
    queue = host.queue()
    try:
        body = orjson.dumps({"seconds": FOREVER})
        await queue.send("e2e-slow", [OutgoingMessage(body=body, message_id="slow-1")])

        async def in_flight() -> bool:
            return [message.delivery_count for message in await queue.peek("e2e-slow")] == [1]

        await host.wait_until(in_flight, "the slow invocation to start")
    finally:
        await queue.close()


async def still_queued(host: DevHost) -> list[str]:
    queue = host.queue()
    try:
        return [message.message_id for message in await queue.peek("e2e-slow")]
    finally:
        await queue.close()


async def test_sigterm_cuts_an_invocation_that_outlasts_the_grace_period(start_host: StartHost) -> None:
    host = await start_host(*SLOW_APP, "--grace-period", "1")
    await start_one_slow_invocation(host)

    assert await host.stop() == 0

    log = host.log()
    assert "devhost.stopping signal=SIGTERM grace_seconds=1" in log
    assert "devhost.grace_over grace_seconds=1" in log
    assert host.invocations("slow_worker") == ["cancelled"]
    assert "devhost.stopped" in log
    # Neither completed nor dead-lettered: it is redelivered when its lock expires.
    assert await still_queued(host) == ["slow-1"]


async def test_a_client_holding_a_connection_open_does_not_hold_the_host_open(start_host: StartHost) -> None:
    host = await start_host("--grace-period", "1")
    _, port = host.url.rsplit(":", 1)
    reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
    # Headers complete, body not: the request is in flight for as long as the client cares to wait.
    writer.write(b"POST /webhooks/r1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    await writer.drain()
    await asyncio.sleep(0.2)

    assert await host.stop() == 0

    assert await asyncio.wait_for(reader.read(), WAIT_TIMEOUT) == b"", "the connection was left open"
    writer.close()
    assert "devhost.grace_over" in host.log()


async def test_a_second_sigint_stops_at_once(start_host: StartHost) -> None:
    # A grace period longer than the test's bound on the exit: only the second SIGINT can end it in time.
    host = await start_host(*SLOW_APP, "--grace-period", str(WAIT_TIMEOUT * 4))
    await start_one_slow_invocation(host)

    host.process.send_signal(signal.SIGINT)
    await host.wait_until(lambda: "devhost.stopping" in host.log(), "the first stop to be logged")
    assert "press Ctrl-C again" in host.log()
    host.process.send_signal(signal.SIGINT)

    assert await asyncio.wait_for(host.process.wait(), WAIT_TIMEOUT) == 128 + signal.SIGINT
    assert "devhost.forced_stop signal=SIGINT" in host.log()
    assert await still_queued(host) == ["slow-1"]


async def test_a_second_sigterm_does_not_force_the_stop(start_host: StartHost) -> None:
    host = await start_host(*SLOW_APP, "--grace-period", "2")
    await start_one_slow_invocation(host)

    host.process.send_signal(signal.SIGTERM)
    await host.wait_until(lambda: "devhost.stopping" in host.log(), "the first stop to be logged")
    host.process.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(host.process.wait(), WAIT_TIMEOUT) == 0
    assert "devhost.already_stopping signal=SIGTERM" in host.log()
    assert host.invocations("slow_worker") == ["cancelled"]
