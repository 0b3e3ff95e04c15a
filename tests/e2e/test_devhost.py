"""The dev host end to end: a real process over loopback, the real SQLite queue, the real Redis server.

Each test starts ``castiel serve`` with its own data directory and port, talks to it the way a provider
or another process would, and stops it with SIGTERM. Every wait is bounded.
"""

from __future__ import annotations

import asyncio

import httpx
import orjson

from castiel.ports import OutgoingMessage, ReceivedMessage
from tests.e2e.apps.slow import COMPLETED_FILE
from tests.e2e.conftest import WAIT_TIMEOUT, DevHost, StartHost


async def _dead_letters(host: DevHost, queue_name: str) -> list[ReceivedMessage]:
    queue = host.queue()
    try:
        async with asyncio.timeout(WAIT_TIMEOUT):
            # The host settles in another process: polling the shared file is how to see it.
            while not (dead := await queue.peek(queue_name, sub_queue="dead_letter")):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return dead
    finally:
        await queue.close()


async def test_a_post_to_an_unknown_registration_is_a_404_with_a_json_reason(start_host: StartHost) -> None:
    host = await start_host()
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.post(f"{host.url}/webhooks/no-such-registration/events", json={"event": "x"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "no-such-registration" in response.json()["error"]
    assert await host.stop() == 0
    assert host.invocations("webhook_receiver") == ["succeeded"]


async def test_run_timers_now_fires_both_timers(start_host: StartHost) -> None:
    host = await start_host("--run-timers-now")
    await host.wait_until(
        lambda: bool(host.invocations("sync_scheduler")) and bool(host.invocations("token_refresher")),
        "both timers",
    )
    assert await host.stop() == 0
    assert host.invocations("sync_scheduler") == ["succeeded"]
    assert host.invocations("token_refresher") == ["succeeded"]


async def test_a_message_whose_handler_always_raises_is_dead_lettered_after_ten_deliveries(
    start_host: StartHost,
) -> None:
    host = await start_host("--app", "tests.e2e.apps.failing:app")
    queue = host.queue()
    try:
        await queue.send("e2e-failing", [OutgoingMessage(body=b"{}", message_id="m-1")])
    finally:
        await queue.close()
    [dead] = await _dead_letters(host, "e2e-failing")
    assert (dead.message_id, dead.delivery_count) == ("m-1", 10)
    assert dead.dead_letter_reason == "RuntimeError: always fails: m-1"
    assert await host.stop() == 0
    assert host.invocations("always_fails") == ["abandoned"] * 9 + ["dead_lettered"]


async def test_a_malformed_message_is_dead_lettered_on_its_first_delivery(start_host: StartHost) -> None:
    host = await start_host()
    queue = host.queue()
    try:
        await queue.send("sync-inbound", [OutgoingMessage(body=b"this is not json", message_id="bad-1")])
    finally:
        await queue.close()
    [dead] = await _dead_letters(host, "sync-inbound")
    assert (dead.message_id, dead.delivery_count) == ("bad-1", 1)
    assert dead.dead_letter_reason is not None
    assert dead.dead_letter_reason.startswith("InvalidMessage: undecodable SyncTaskMessage")
    assert "Invalid JSON" in dead.dead_letter_reason
    assert await host.stop() == 0
    assert host.invocations("sync_inbound_worker") == ["dead_lettered"]


async def test_sigterm_mid_flight_loses_no_message(start_host: StartHost) -> None:
    host = await start_host("--app", "tests.e2e.apps.slow:app")
    completed_file = host.data_dir / COMPLETED_FILE
    ids = [f"job-{i:02d}" for i in range(40)]
    queue = host.queue()
    try:
        # More messages than maxConcurrentCalls (16), with staggered durations: when the first finishes, others
        # are mid-flight and some were never received.
        await queue.send(
            "e2e-slow",
            [
                OutgoingMessage(body=orjson.dumps({"seconds": 0.3 + 0.1 * (i % 8)}), message_id=message_id)
                for i, message_id in enumerate(ids)
            ],
        )
        await host.wait_until(lambda: completed_file.exists() and bool(completed_file.read_text()), "a completion")
        done_at_signal = completed_file.read_text().split()
        assert await host.stop() == 0

        completed = completed_file.read_text().split()
        remaining = await queue.peek("e2e-slow", max_messages=100)
        dead = await queue.peek("e2e-slow", max_messages=100, sub_queue="dead_letter")
    finally:
        await queue.close()

    assert "devhost.stopped" in host.log()
    assert dead == []
    assert len(completed) == len(set(completed)), "a message ran twice"
    remaining_ids = {message.message_id for message in remaining}
    assert set(completed).isdisjoint(remaining_ids), "a completed message is still queued"
    assert set(completed) | remaining_ids == set(ids), "a message was lost"
    # In-flight work finished after the signal, and nothing received was left unsettled.
    assert len(completed) > len(done_at_signal)
    assert remaining_ids
    assert all(message.delivery_count == 0 for message in remaining)
    assert host.invocations("slow_worker") == ["succeeded"] * len(completed)
