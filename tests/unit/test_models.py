from datetime import UTC, datetime, timedelta

import pytest

from castiel.models import (
    ChangeOrigin,
    Operation,
    OutboundChange,
    Priority,
    SyncMode,
    SyncTask,
    SyncTaskMessage,
    format_utc,
)

T0 = datetime(2026, 11, 23, 2, 36, 0, tzinfo=UTC)


def test_stored_times_order_as_text_exactly_as_they_order_as_times() -> None:
    times = [T0, T0 + timedelta(microseconds=1), T0 + timedelta(milliseconds=123), T0 + timedelta(seconds=1)]
    assert sorted(format_utc(t) for t in reversed(times)) == [format_utc(t) for t in times]
    assert format_utc(T0) == "2026-11-23T02:36:00.000000Z"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_utc(datetime(2026, 1, 1))


def test_wire_form_is_camel_case_and_round_trips() -> None:
    message = SyncTaskMessage(
        integration_id="github",
        tenant_id="t1",
        connection_id="c1",
        sync_mode=SyncMode.PULL,
        priority=Priority.HIGH,
        correlation_id="corr",
        enqueued_at=T0,
        task_id="task-1",
    )
    body = message.to_json_bytes()
    assert b'"tenantId":"t1"' in body
    assert b'"enqueuedAt":"2026-11-23T02:36:00.000000Z"' in body
    assert SyncTaskMessage.from_json_bytes(body) == message


def test_sync_message_ids_are_deterministic_per_run_slot() -> None:
    common = {"integration_id": "g", "tenant_id": "t", "connection_id": "c", "sync_mode": SyncMode.PULL}
    first = SyncTaskMessage(**common, correlation_id="a", enqueued_at=T0, task_id="task")
    second = SyncTaskMessage(**common, correlation_id="b", enqueued_at=T0 + timedelta(seconds=5), task_id="task")
    assert first.message_id(T0) == second.message_id(T0)
    assert first.message_id(T0) != first.message_id(T0 + timedelta(hours=1))


def test_outbound_message_ids_follow_the_delivery() -> None:
    change = OutboundChange(
        integration_id="github",
        tenant_id="t",
        connection_id="c",
        entity_type="issue",
        entity_id="github:1",
        external_id="1",
        operation=Operation.UPDATE,
        timestamp=T0,
        origin=ChangeOrigin.WEBHOOK,
        correlation_id="x",
    )
    assert change.message_id("delivery-1") == change.model_copy(update={"correlation_id": "y"}).message_id("delivery-1")
    assert change.message_id("delivery-1") != change.message_id("delivery-2")


@pytest.mark.parametrize(("priority", "rank"), [(Priority.HIGH, 0), (Priority.NORMAL, 1), (Priority.LOW, 2)])
def test_tasks_store_a_sortable_priority_rank(priority: Priority, rank: int) -> None:
    task = SyncTask(id="x", tenant_id="t", integration_id="i", connection_id="c", priority=priority, next_run_at=T0)
    assert task.to_doc()["priorityRank"] == rank
