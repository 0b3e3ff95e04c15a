"""Trigger inputs as real azure.functions objects, and HTTP results back."""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func
import pytest
from azure.functions.servicebus import ServiceBusMessage

from castiel.devhost.convert import answer_from, http_request_from, service_bus_message_from, timer_request
from castiel.ports import ReceivedMessage

ENQUEUED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LOCKED_UNTIL = datetime(2026, 1, 1, 12, 1, tzinfo=UTC)


def test_service_bus_message_carries_every_field() -> None:
    received = ReceivedMessage(
        body=b'{"a": 1}',
        message_id="m-1",
        sequence_number=42,
        delivery_count=3,
        enqueued_time=ENQUEUED,
        correlation_id="corr-1",
        application_properties={"castiel-retry-count": 2, "origin": "test"},
        content_type="application/json",
        lock_token="lock-1",
        locked_until=LOCKED_UNTIL,
    )
    message = service_bus_message_from(received)
    assert isinstance(message, ServiceBusMessage)
    assert message.get_body() == b'{"a": 1}'
    assert (message.message_id, message.correlation_id, message.content_type) == ("m-1", "corr-1", "application/json")
    assert (message.delivery_count, message.sequence_number) == (3, 42)
    assert (message.enqueued_time_utc, message.locked_until, message.lock_token) == (ENQUEUED, LOCKED_UNTIL, "lock-1")
    assert message.application_properties == {"castiel-retry-count": 2, "origin": "test"}
    assert message.user_properties == message.application_properties


def test_timer_request_reports_past_due_and_the_schedule_status() -> None:
    timer = timer_request(past_due=True, last=ENQUEUED, next_fire=LOCKED_UNTIL)
    assert timer.past_due is True
    assert timer.schedule_status == {"Last": ENQUEUED.isoformat(), "Next": LOCKED_UNTIL.isoformat()}


def test_http_request_keeps_method_url_params_route_params_and_joins_repeated_headers() -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "server": ("127.0.0.1", 7071),
        "path": "/webhooks/r1/events",
        "query_string": b"a=1&b=two",
        "headers": [(b"x-one", b"1"), (b"x-many", b"a"), (b"x-many", b"b"), (b"host", b"127.0.0.1:7071")],
    }
    request = func_request = http_request_from(scope, {"registrationId": "r1"}, b"payload")
    assert isinstance(request, func.HttpRequest)
    assert func_request.method == "POST"
    assert func_request.url == "http://127.0.0.1:7071/webhooks/r1/events?a=1&b=two"
    assert dict(func_request.params) == {"a": "1", "b": "two"}
    assert dict(func_request.route_params) == {"registrationId": "r1"}
    assert func_request.headers["X-One"] == "1"
    assert func_request.headers["x-many"] == "a, b"
    assert func_request.get_body() == b"payload"


def test_http_request_without_a_host_header_names_the_server_and_keeps_blank_params() -> None:
    scope = {"method": "GET", "server": ("10.0.0.1", 80), "path": "/x", "query_string": b"flag=&a=1&a=2", "headers": []}
    request = http_request_from(scope, {}, b"")
    assert request.url == "http://10.0.0.1:80/x?flag=&a=1&a=2"
    assert dict(request.params) == {"flag": "", "a": "2"}


@pytest.mark.parametrize(
    ("result", "status", "body", "content_type"),
    [
        (
            func.HttpResponse(b'{"ok":1}', status_code=202, mimetype="application/json"),
            202,
            b'{"ok":1}',
            "application/json",
        ),
        (func.HttpResponse("hi", status_code=404), 404, b"hi", "text/plain; charset=utf-8"),
        ("text", 200, b"text", "text/plain; charset=utf-8"),
        (b"bytes", 200, b"bytes", "text/plain; charset=utf-8"),
        (None, 204, b"", None),
    ],
)
def test_function_results_as_answers(result: object, status: int, body: bytes, content_type: str | None) -> None:
    answer = answer_from(result)
    assert (answer.status, answer.body, answer.content_type) == (status, body, content_type)


def test_response_headers_are_kept_and_an_explicit_content_type_wins() -> None:
    answer = answer_from(
        func.HttpResponse("x", headers={"X-Trace": "t1", "Content-Type": "text/csv", "Content-Length": "99"})
    )
    assert answer.headers == {"X-Trace": "t1"}
    assert answer.content_type == "text/csv"


def test_an_unconvertible_result_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="returned dict"):
        answer_from({"not": "a response"})
