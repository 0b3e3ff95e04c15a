"""What each outcome counts as, the dimensions metrics take from the invocation, the queue's trace context, and the
exporter chosen by the connection string."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from castiel.models import (
    CredentialMetadata,
    Provider,
    RateLimitCheck,
    RefreshOutcome,
    SyncCounts,
    SyncResult,
    TargetOutcome,
)
from castiel.ports import OutgoingMessage
from castiel.telemetry import current_correlation_id
from castiel.telemetry.export import configure
from castiel.telemetry.metrics import Metric, record
from castiel.telemetry.outcomes import credential_handled, rate_limited, sync_finished
from castiel.telemetry.propagation import TracedQueue
from castiel.telemetry.spans import TRACEPARENT, annotate, invocation
from tests.telemetry_capture import Captured

START = datetime(2026, 1, 1, tzinfo=UTC)


def result(status: str, **fields: Any) -> SyncResult:
    return SyncResult(
        id="r-1",
        tenant_id="t1",
        connection_id="conn-1",
        status=status,
        started_at=START,
        finished_at=START + timedelta(milliseconds=250),
        correlation_id="corr",
        **fields,
    )


@pytest.mark.parametrize(
    ("status", "metric", "extra"),
    [
        ("succeeded", "inbound_success", {"outcome": "succeeded"}),
        ("failed", "inbound_failed", {"reason": "failed"}),
        ("needs_reauth", "inbound_failed", {"reason": "needs_reauth"}),
    ],
)
def test_a_final_pull_result_counts_once(captured: Captured, status: str, metric: str, extra: dict[str, str]) -> None:
    sync_finished("inbound", result(status))
    (point,) = captured.points(metric)
    assert point.attributes == {"tenant": "t1", "connection": "conn-1", "direction": "inbound", **extra}


@pytest.mark.parametrize("status", ["retrying", "paused", "deferred"])
def test_a_result_that_comes_back_later_is_neither_success_nor_failure(captured: Captured, status: str) -> None:
    sync_finished("inbound", result(status))
    names = set(captured.metrics())
    assert names == {"sync_duration_ms"}
    (duration,) = captured.points("sync_duration_ms")
    assert duration.value == 250


def test_a_pulls_records_count_by_outcome(captured: Captured) -> None:
    counts = SyncCounts(fetched=10, created=4, updated=3, unchanged=2, failed=1)
    sync_finished("inbound", result("succeeded", counts=counts))
    by_outcome = {point.attributes["outcome"]: point.value for point in captured.points("sync_records")}
    assert by_outcome == {"created": 4, "updated": 3, "unchanged": 2, "failed": 1}


def test_an_outbound_changes_records_are_its_targets_by_status(captured: Captured) -> None:
    targets = [
        TargetOutcome(connection_id="a", status="pushed"),
        TargetOutcome(connection_id="b", status="pushed"),
        TargetOutcome(connection_id="c", status="failed", reason="403"),
    ]
    sync_finished("outbound", result("failed", targets=targets))
    by_outcome = {point.attributes["outcome"]: point.value for point in captured.points("sync_records")}
    assert by_outcome == {"pushed": 2, "failed": 1}
    (failed,) = captured.points("outbound_failed")
    assert failed.attributes["direction"] == "outbound"


def credential() -> CredentialMetadata:
    return CredentialMetadata.model_validate(
        {
            "id": "cred-1",
            "tenantId": "t1",
            "connectionId": "conn-1",
            "provider": "github",
            "credentialType": "oauth2_authorization_code",
            "secretName": "t1--conn-1--oauth2-authorization-code",
        }
    )


def test_refresh_outcomes_count_as_success_or_failure(captured: Captured) -> None:
    outcomes: Sequence[RefreshOutcome] = list(RefreshOutcome)
    credential_handled(credential(), outcomes)
    success = {point.attributes["outcome"] for point in captured.points("refresher_success")}
    failed = {point.attributes["reason"] for point in captured.points("refresher_failed")}
    assert success == {"refreshed", "already_fresh"}
    assert failed == {"failed", "needs_reauth"}
    for point in captured.points("refresher_failed"):
        assert point.attributes["connection"] == "conn-1"
        assert point.attributes["provider"] == Provider.GITHUB.value


@pytest.mark.parametrize(("queued", "metric"), [(True, "ratelimit_queued"), (False, "ratelimit_rejected")])
def test_a_refused_call_is_queued_or_rejected(captured: Captured, queued: bool, metric: str) -> None:
    check = RateLimitCheck(
        allowed=False, queued=queued, remaining=0, reset_at=START, retry_after_seconds=3, level="operation"
    )
    rate_limited(check, tenant="t1", connection="conn-1", provider="github", operation="fetch")
    (point,) = captured.points(metric)
    assert point.attributes == {
        "tenant": "t1",
        "connection": "conn-1",
        "provider": "github",
        "operation": "fetch",
        "limit_level": "operation",
    }


def test_metrics_take_the_invocations_dimensions_but_not_per_execution_ones(captured: Captured) -> None:
    with invocation("sync_inbound_worker", kind=SpanKind.CONSUMER, execution_id="inv-1", correlation_id="corr-1"):
        annotate(tenant="t1", connection="conn-1", provider="github", task="task-1")
        record(Metric.DEAD_LETTERED, queue="sync-inbound", reason="permanent")
        assert current_correlation_id() == "corr-1"
    (point,) = captured.points("dead_lettered")
    assert point.attributes == {
        "function": "sync_inbound_worker",
        "tenant": "t1",
        "connection": "conn-1",
        "provider": "github",
        "queue": "sync-inbound",
        "reason": "permanent",
    }
    (span,) = captured.spans("sync_inbound_worker")
    assert dict(span.attributes or {})["task"] == "task-1"


def test_a_sample_is_a_debug_log_line(captured: Captured, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="castiel"):
        record(Metric.TASKS_SCHEDULED, 3)
    assert [r.getMessage() for r in caplog.records] == ["metric metric=tasks_scheduled value=3"]


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend(messages)


async def test_messages_sent_inside_a_span_carry_its_traceparent_and_a_retry_keeps_its_own(captured: Captured) -> None:
    inner = RecordingQueue()
    queue = TracedQueue(inner)  # type: ignore[arg-type]
    await queue.send("q", [OutgoingMessage(body=b"{}", message_id="outside")])
    with invocation("webhook_receiver", kind=SpanKind.SERVER) as span:
        kept = {TRACEPARENT: "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
        await queue.send(
            "q",
            [
                OutgoingMessage(body=b"{}", message_id="fresh"),
                OutgoingMessage(body=b"{}", message_id="retry", application_properties=kept),
            ],
        )
    outside, fresh, retry = inner.sent
    assert TRACEPARENT not in outside.application_properties
    context = span.get_span_context()
    assert str(fresh.application_properties[TRACEPARENT]).startswith(
        f"00-{context.trace_id:032x}-{context.span_id:016x}-"
    )
    assert retry.application_properties == kept


def test_nothing_is_exported_without_a_connection_string() -> None:
    installs: list[dict[str, Any]] = []
    assert configure(None, installed=lambda: False, install=lambda **options: installs.append(options)) is False
    assert configure("", installed=lambda: False, install=lambda **options: installs.append(options)) is False
    assert installs == []


def test_azure_monitor_is_installed_once_unless_the_host_did() -> None:
    installs: list[dict[str, Any]] = []
    connection = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
    assert configure(connection, installed=lambda: True, install=lambda **options: installs.append(options)) is False
    assert installs == []
    assert configure(connection, installed=lambda: False, install=lambda **options: installs.append(options))
    assert installs == [{"connection_string": connection, "logger_name": "castiel"}]
