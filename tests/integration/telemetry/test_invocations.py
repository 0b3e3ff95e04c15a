"""Each function's invocation emits one span and its metrics with the right dimensions, and a webhook's trace and
correlation id reach the queue worker its change was sent to (the embedded queue and the dev host's pump)."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import function_app
from castiel.devhost.loader import discover
from castiel.devhost.queues import QueuePump
from castiel.errors import PermanentError
from castiel.models import (
    OutboundChange,
    Provider,
    SyncMode,
)
from castiel.runtime import Runtime
from castiel.telemetry.spans import TRACEPARENT
from tests.integration.function_calls import add_connection, add_due_task, call, webhook_change
from tests.integration.webhooks.conftest import SAMPLES, SECRETS, auth_headers, registration
from tests.queue_delivery import deliver
from tests.telemetry_capture import Captured


def only_span(captured: Captured, name: str) -> ReadableSpan:
    (span,) = captured.spans(name)
    return span


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_the_scheduler_span_and_its_tasks_scheduled(runtime: Runtime, captured: Captured) -> None:
    await add_due_task(runtime, Provider.STANDARD)
    await call("sync_scheduler", TimerRequest(past_due=False), "inv-scheduler")

    span = only_span(captured, "sync_scheduler")
    assert span.kind is SpanKind.SERVER
    assert attributes(span)["function"] == "sync_scheduler"
    assert attributes(span)["execution_id"] == "inv-scheduler"
    assert len(attributes(span)["correlation_id"]) == 32
    (point,) = captured.points("tasks_scheduled")
    assert point.value == 1
    assert point.attributes == {"function": "sync_scheduler"}


async def test_a_failed_pull_is_inbound_failed_and_dead_lettered_with_its_dimensions(
    runtime: Runtime, captured: Captured
) -> None:
    # A provider without an adapter fails for good: the permanent end of a pull.
    await add_due_task(runtime, Provider.STANDARD)
    await call("sync_scheduler", TimerRequest(past_due=False))
    (queued,) = await runtime.queue.peek("sync-inbound")
    delivered = await deliver(runtime.queue, "sync-inbound", queued.body, queued.message_id)

    with pytest.raises(PermanentError):
        await call("sync_inbound_worker", delivered.message, "inv-inbound", actions=delivered.actions)

    span = only_span(captured, "sync_inbound_worker")
    assert span.kind is SpanKind.CONSUMER
    assert not span.status.is_ok
    assert attributes(span) == {
        "function": "sync_inbound_worker",
        "execution_id": "inv-inbound",
        "correlation_id": queued.correlation_id,
        "tenant": "t1",
        "connection": "conn-1",
        "task": "task-1",
        "provider": "standard",
    }
    # The scheduler's span is the parent: the task's message carried its trace context.
    assert span.parent is not None
    assert span.parent.span_id == only_span(captured, "sync_scheduler").context.span_id
    dimensions = {"function": "sync_inbound_worker", "tenant": "t1", "connection": "conn-1", "provider": "standard"}
    (failed,) = captured.points("inbound_failed")
    assert failed.attributes == {**dimensions, "direction": "inbound", "reason": "failed"}
    (duration,) = captured.points("sync_duration_ms")
    assert duration.count == 1
    assert duration.attributes == {**dimensions, "direction": "inbound", "status": "failed"}
    (dead,) = captured.points("dead_lettered")
    assert dead.attributes == {**dimensions, "queue": "sync-inbound", "reason": "permanent"}
    assert "inbound_success" not in captured.metrics()


async def test_an_outbound_change_with_nothing_to_push_is_outbound_success(
    runtime: Runtime, captured: Captured
) -> None:
    # A connection that only receives takes no webhook change: the change ends "skipped", a success.
    await add_connection(runtime, Provider.GITHUB, sync_direction=SyncMode.PUSH)
    change = webhook_change(correlation_id="c" * 32)
    delivered = await deliver(runtime.queue, "sync-outbound", change.to_json_bytes(), correlation_id="c" * 32)
    await call("sync_outbound_worker", delivered.message, "inv-outbound", actions=delivered.actions)
    assert delivered.actions.outcome == "succeeded"

    span = only_span(captured, "sync_outbound_worker")
    assert attributes(span)["correlation_id"] == "c" * 32
    assert attributes(span)["provider"] == "github"
    (success,) = captured.points("outbound_success")
    assert success.attributes == {
        "function": "sync_outbound_worker",
        "tenant": "t1",
        "connection": "conn-1",
        "provider": "github",
        "direction": "outbound",
        "outcome": "skipped",
    }


async def test_the_token_refresher_span(runtime: Runtime, captured: Captured) -> None:
    await call("token_refresher", TimerRequest(past_due=False), "inv-refresher")
    span = only_span(captured, "token_refresher")
    assert attributes(span)["execution_id"] == "inv-refresher"
    assert span.kind is SpanKind.SERVER


async def test_a_webhook_to_an_unknown_registration_is_rejected_with_its_latency(
    runtime: Runtime, captured: Captured
) -> None:
    request = func.HttpRequest(
        method="POST", url="http://localhost/webhooks/nope/events", route_params={"registrationId": "nope"}, body=b"{}"
    )
    response = await call("webhook_receiver", request, "inv-webhook")
    assert response.status_code == 404

    span = only_span(captured, "webhook_receiver")
    assert attributes(span)["execution_id"] == "inv-webhook"
    (rejected,) = captured.points("webhook_rejected")
    expected = {"function": "webhook_receiver", "provider": "unknown", "outcome": "unknown_registration"}
    assert rejected.attributes == {**expected, "status": "404"}
    (latency,) = captured.points("webhook_latency_ms")
    assert latency.count == 1
    assert latency.attributes == expected
    assert "webhook_success" not in captured.metrics()


async def test_a_webhooks_trace_and_correlation_id_reach_the_outbound_worker(
    runtime: Runtime, captured: Captured
) -> None:
    github = registration("github")
    assert github.secret_name is not None
    await runtime.secrets.set_secret(github.secret_name, SECRETS["github"])
    await runtime.registrations.add(github)
    sample = SAMPLES["github"]
    headers = {**sample.headers(), **auth_headers("github", sample.body, now=runtime.webhooks._clock())}
    request = func.HttpRequest(
        method="POST",
        url="http://localhost/webhooks/reg-github/events",
        route_params={"registrationId": "reg-github"},
        headers={name.lower(): value for name, value in headers.items()},
        body=sample.body,
    )
    response = await call("webhook_receiver", request, "inv-webhook")
    assert response.status_code == 202, response.get_body()
    await runtime.webhooks.drain()

    # The hop: the dev host's pump receives the message and runs the function, as `castiel serve` does.
    (message,) = await runtime.queue.receive("sync-outbound", max_messages=1)
    assert TRACEPARENT in message.application_properties
    (worker,) = discover(function_app.app, {"sync_outbound_worker"})
    pump = QueuePump(worker, runtime.queue, max_concurrent_calls=1, max_delivery_count=10, timeout=30)
    await pump.process(message)

    webhook = only_span(captured, "webhook_receiver")
    outbound = only_span(captured, "sync_outbound_worker")
    assert outbound.context.trace_id == webhook.context.trace_id
    assert outbound.parent is not None
    assert outbound.parent.span_id == webhook.context.span_id
    change = OutboundChange.from_json_bytes(message.body)
    assert attributes(outbound)["correlation_id"] == attributes(webhook)["correlation_id"] == change.correlation_id
    assert message.correlation_id == change.correlation_id
    # The registration's connection does not exist here: dead-lettered, the reason an operator reads.
    (dead,) = await runtime.queue.peek("sync-outbound", sub_queue="dead_letter")
    assert dead.dead_letter_reason is not None
    assert "does not exist" in dead.dead_letter_reason
    (success,) = captured.points("webhook_success")
    assert success.attributes["provider"] == "github"
    assert json.loads(response.get_body()) == {"accepted": 1}
