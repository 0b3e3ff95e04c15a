"""The five functions: trigger metadata, and each called through get_user_function() with real trigger objects."""

from __future__ import annotations

import json
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import azurefunctions.extensions.base as extensions_base
import pytest
from azure.functions.timer import TimerRequest
from azurefunctions.extensions.bindings.servicebus import ServiceBusConverter

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.clock import now_utc
from castiel.credentials.types import parse_credential
from castiel.errors import InvalidMessage, PermanentError
from castiel.models import (
    Connection,
    Provider,
    SyncResult,
    SyncTask,
    SyncTaskMessage,
    TaskStatus,
    format_utc,
)
from castiel.ports import Query
from castiel.runtime import Runtime, close_runtime, get_runtime
from tests.integration.function_calls import FUNCTIONS, add_due_task, call, webhook_change
from tests.queue_delivery import Delivered, deliver


def bindings(name: str) -> list[dict[str, Any]]:
    return json.loads(FUNCTIONS[name].get_function_json())["bindings"]  # type: ignore[no-any-return]


def test_exactly_the_five_functions_are_registered() -> None:
    assert set(FUNCTIONS) == {
        "sync_scheduler",
        "sync_inbound_worker",
        "sync_outbound_worker",
        "token_refresher",
        "webhook_receiver",
    }


@pytest.mark.parametrize(
    ("name", "schedule"), [("sync_scheduler", "0 0 * * * *"), ("token_refresher", "0 0 */6 * * *")]
)
def test_timers_have_their_ncrontab_schedules(name: str, schedule: str) -> None:
    (trigger,) = bindings(name)
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == schedule
    assert trigger["runOnStartup"] is False


@pytest.mark.parametrize(
    ("name", "queue"),
    [("sync_inbound_worker", "%SERVICE_BUS_QUEUE%"), ("sync_outbound_worker", "%SERVICE_BUS_QUEUE_OUTBOUND%")],
)
def test_queue_workers_listen_on_their_service_bus_queues(name: str, queue: str) -> None:
    (trigger,) = bindings(name)
    assert trigger["type"] == "serviceBusTrigger"
    assert trigger["queueName"] == queue
    assert trigger["connection"] == "ServiceBusConnection"


@pytest.mark.parametrize("name", ["sync_inbound_worker", "sync_outbound_worker"])
def test_queue_workers_take_the_sdk_type_binding_and_settle_their_messages(name: str) -> None:
    (trigger,) = bindings(name)
    assert trigger["autoCompleteMessages"] is False
    hints = typing.get_type_hints(FUNCTIONS[name].get_user_function())
    # What the Python worker consults: the extension's converter for the trigger (the host then sends the AMQP
    # message as model binding data), and the one unbound parameter it fills with its settlement client.
    registry = extensions_base.get_binding_registry()
    assert registry.get("serviceBusTrigger") is ServiceBusConverter
    assert registry.check_supported_type(hints["msg"])
    assert registry.check_supported_grpc_client_type(hints["actions"])


def test_the_webhook_receiver_is_an_anonymous_post_route() -> None:
    trigger, output = bindings("webhook_receiver")
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == "webhooks/{registrationId}/events"
    assert trigger["methods"] == ["POST"]
    assert trigger["authLevel"] == "ANONYMOUS"
    assert output["type"] == "http"


async def run_worker(runtime: Runtime, name: str, body: bytes, message_id: str = "m-1") -> Delivered:
    """``name``'s queue message (sent, or already queued with ``message_id``) through the function, with the SDK-type
    binding's message and actions; what it settled is on the queue afterwards."""
    queue = "sync-inbound" if name == "sync_inbound_worker" else "sync-outbound"
    delivered = await deliver(runtime.queue, queue, body, message_id)
    try:
        await call(name, delivered.message, actions=delivered.actions)
    finally:
        await runtime.webhooks.drain()
    return delivered


async def test_webhook_to_an_unknown_registration_is_a_404_with_a_reason(runtime: Runtime) -> None:
    request = func.HttpRequest(
        method="POST",
        url="http://localhost/webhooks/nope/events",
        route_params={"registrationId": "nope"},
        body=b"{}",
    )
    response = await call("webhook_receiver", request)
    assert response.status_code == 404
    assert "nope" in json.loads(response.get_body())["error"]


async def test_the_scheduler_timer_queues_due_tasks(runtime: Runtime) -> None:
    await add_due_task(runtime)
    await call("sync_scheduler", TimerRequest(past_due=False))
    (message,) = await runtime.queue.peek("sync-inbound")
    assert SyncTaskMessage.from_json_bytes(message.body).task_id == "task-1"


async def test_the_inbound_worker_refuses_an_undecodable_body(runtime: Runtime) -> None:
    with pytest.raises(InvalidMessage, match="SyncTaskMessage"):
        await run_worker(runtime, "sync_inbound_worker", b"not json")


async def test_the_inbound_worker_runs_the_task_lifecycle(runtime: Runtime) -> None:
    # A provider without an adapter (the five have one) fails permanently: the failed end of the lifecycle.
    await add_due_task(runtime, Provider.STANDARD)
    await call("sync_scheduler", TimerRequest(past_due=False))
    (queued,) = await runtime.queue.peek("sync-inbound")

    with pytest.raises(PermanentError, match="no adapter is installed for provider 'standard'"):
        await run_worker(runtime, "sync_inbound_worker", queued.body, queued.message_id)

    task = SyncTask.model_validate(await runtime.store.read(SyncTask.container, "task-1", "t1"))
    assert task.status is TaskStatus.FAILED
    result = SyncResult.model_validate(await runtime.store.read(SyncResult.container, str(task.last_result_id), "t1"))
    assert result.status == "failed"
    assert result.error is not None
    assert "no adapter" in result.error


async def test_the_outbound_worker_reads_a_webhook_change_through_its_connection(runtime: Runtime) -> None:
    # The change is read from its origin before anything is pushed: an unknown connection, or one whose credential
    # is missing, is a permanent error naming it (dead-lettered with that reason).
    with pytest.raises(PermanentError, match="connection conn-1 of tenant t1 does not exist"):
        await run_worker(runtime, "sync_outbound_worker", webhook_change().to_json_bytes(), "m-1")
    source = Connection(id="conn-1", tenant_id="t1", integration_id="github", provider=Provider.GITHUB)
    await runtime.store.create(Connection.container, source.to_doc())
    with pytest.raises(PermanentError, match="connection conn-1 has no credential"):
        await run_worker(runtime, "sync_outbound_worker", webhook_change().to_json_bytes(), "m-2")
    reasons = [m.dead_letter_reason for m in await runtime.queue.peek("sync-outbound", sub_queue="dead_letter")]
    assert reasons == [
        "PermanentError: connection conn-1 of tenant t1 does not exist",
        "ConfigError: connection conn-1 has no credential: add one with `castiel credentials add` or `connect`",
    ]


async def test_the_token_refresher_handles_credentials_due_within_the_threshold(runtime: Runtime) -> None:
    connection = Connection(id="conn-1", tenant_id="t1", integration_id="github", provider=Provider.GITHUB)
    await runtime.store.create(Connection.container, connection.to_doc())
    for credential_id, days in (("soon", 3), ("later", 30)):
        expires_at = format_utc(now_utc() + timedelta(days=days))
        key = parse_credential("api_key", {"api_key": f"key-{credential_id}", "expires_at": expires_at})
        await runtime.credentials.add("t1", "conn-1", key, credential_id=credential_id)
    await call("token_refresher", TimerRequest(past_due=False))
    audits = (await runtime.store.query("token-refresh-audit", Query())).items
    assert [audit["credentialId"] for audit in audits] == ["soon"]
    assert audits[0]["outcome"] == "warned"


async def test_a_provider_pause_checkpoints_the_task_as_paused_not_failed(runtime: Runtime) -> None:
    await add_due_task(runtime)
    await runtime.limiter.observe_response(
        tenant_id="t1", connection_id="conn-1", provider="github", status_code=429, headers={"Retry-After": "120"}
    )
    await call("sync_scheduler", TimerRequest(past_due=False))
    (queued,) = await runtime.queue.peek("sync-inbound")

    await run_worker(runtime, "sync_inbound_worker", queued.body, queued.message_id)

    task = SyncTask.model_validate(await runtime.store.read(SyncTask.container, "task-1", "t1"))
    assert task.status is TaskStatus.PAUSED
    assert task.paused_until is not None
    assert 110 <= (task.paused_until - now_utc()).total_seconds() <= 121
    result = SyncResult.model_validate(await runtime.store.read(SyncResult.container, str(task.last_result_id), "t1"))
    assert result.status == "paused"


async def test_a_fetch_over_its_window_is_deferred_and_the_task_stays_queued(
    data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("RATE_LIMIT_OVERRIDES", '{"connections": {"conn-1": {"operations": {"fetch": 1}}}}')
    await close_runtime()
    runtime = await get_runtime()
    try:
        await runtime.redis.flushdb()
        await add_due_task(runtime)
        await runtime.limiter.check(tenant_id="t1", connection_id="conn-1", provider="github", operation="fetch")
        await call("sync_scheduler", TimerRequest(past_due=False))
        (queued,) = await runtime.queue.peek("sync-inbound")

        await run_worker(runtime, "sync_inbound_worker", queued.body, queued.message_id)

        task = SyncTask.model_validate(await runtime.store.read(SyncTask.container, "task-1", "t1"))
        assert task.status is TaskStatus.QUEUED
        copies = await runtime.queue.peek("sync-inbound", max_messages=10)
        deferred = [message for message in copies if message.message_id == f"{queued.message_id}:d1"]
        assert len(deferred) == 1
        assert deferred[0].scheduled_enqueue_time is not None
    finally:
        await close_runtime()
