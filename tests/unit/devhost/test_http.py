"""The HTTP side of the dev host, in process: routing, methods, conversions and failures (ASGI, no socket)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import azure.functions as func
import httpx
import orjson
import pytest

from castiel.devhost.http import HttpApp
from castiel.devhost.loader import HostedFunction, HttpBinding, caller
from castiel.errors import NotFound


async def echo(req: func.HttpRequest) -> func.HttpResponse:
    seen = {
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "route": dict(req.route_params),
        "header": req.headers.get("x-probe"),
        "body": req.get_body().decode(),
    }
    return func.HttpResponse(orjson.dumps(seen), status_code=201, mimetype="application/json")


def sync_hello(req: func.HttpRequest) -> str:
    return f"hello {req.route_params['name']}"


async def broken(req: func.HttpRequest) -> func.HttpResponse:
    raise ZeroDivisionError("a bug")


async def expected_failure(req: func.HttpRequest) -> func.HttpResponse:
    raise NotFound("nothing here")


async def nothing(req: func.HttpRequest) -> None:
    return None


FUNCTIONS = [
    HostedFunction("echo", HttpBinding("echo/{name}", frozenset({"GET", "POST"})), caller(echo, "req")),
    HostedFunction("hello", HttpBinding("hello/{name}", None), caller(sync_hello, "req")),
    HostedFunction("broken", HttpBinding("broken", frozenset({"GET"})), caller(broken, "req")),
    HostedFunction("expected", HttpBinding("expected", frozenset({"GET"})), caller(expected_failure, "req")),
    HostedFunction("nothing", HttpBinding("nothing", frozenset({"DELETE"})), caller(nothing, "req")),
]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=HttpApp(FUNCTIONS, timeout=5))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:7071") as http:
        yield http


async def test_the_function_sees_the_request_as_func_http_request(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo/ada?x=1", content=b"body!", headers={"X-Probe": "p"})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "method": "POST",
        "url": "http://127.0.0.1:7071/echo/ada?x=1",
        "params": {"x": "1"},
        "route": {"name": "ada"},
        "header": "p",
        "body": "body!",
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("PUT", "/echo/ada", 405, "PUT is not allowed at /echo/ada"),
        ("GET", "/nowhere", 404, "no function at GET /nowhere"),
        ("POST", "/echo", 404, "no function at POST /echo"),
        ("POST", "/admin/host/status", 405, "POST is not allowed at /admin/host/status"),
    ],
)
async def test_unknown_paths_and_methods_answer_json(
    client: httpx.AsyncClient, method: str, path: str, status: int, error: str
) -> None:
    response = await client.request(method, path)
    assert (response.status_code, response.json()) == (status, {"error": error})


async def test_a_disallowed_method_names_the_allowed_ones(client: httpx.AsyncClient) -> None:
    response = await client.put("/echo/ada")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


async def test_status_endpoint_reports_running(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/host/status")
    assert (response.status_code, response.json()) == (200, {"state": "Running"})


async def test_sync_function_with_any_method(client: httpx.AsyncClient) -> None:
    for method in ("GET", "PATCH"):
        response = await client.request(method, "/hello/bob")
        assert (response.status_code, response.text) == (200, "hello bob")


async def test_none_is_204_without_a_body_or_its_length(client: httpx.AsyncClient) -> None:
    response = await client.delete("/nothing")
    assert response.status_code == 204
    assert "content-length" not in response.headers
    assert response.content == b""


async def test_a_bug_is_a_500_logged_with_its_traceback(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await client.get("/broken")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "function broken failed"
    line = next(record.getMessage() for record in caplog.records if record.getMessage().startswith("invocation "))
    assert "function=broken" in line
    assert "outcome=failed" in line
    assert f"invocation_id={body['invocationId']}" in line
    assert "ZeroDivisionError: a bug" in caplog.text
    assert any(record.exc_info and record.exc_info[0] is ZeroDivisionError for record in caplog.records)


async def test_an_expected_error_is_a_500_without_a_traceback(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await client.get("/expected")
    assert response.status_code == 500
    assert 'error="NotFound: nothing here"' in caplog.text
    assert not any(record.exc_info for record in caplog.records)


async def test_each_request_logs_one_invocation_line_with_the_callers_correlation_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await client.get("/echo/x", headers={"x-correlation-id": "corr-77"})
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("invocation ")]
    assert len(lines) == 1
    assert "function=echo" in lines[0]
    assert "correlation_id=corr-77" in lines[0]
    assert "outcome=succeeded" in lines[0]


async def test_a_client_gone_before_its_body_arrived_runs_nothing_and_gets_no_answer() -> None:
    calls: list[func.HttpRequest] = []

    async def record(req: func.HttpRequest) -> str:
        calls.append(req)
        return "ran"

    app = HttpApp([HostedFunction("record", HttpBinding("record", None), caller(record, "req"))], timeout=5)
    scope = {"type": "http", "method": "POST", "path": "/record", "query_string": b"", "headers": []}
    sent: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert (calls, sent) == ([], [])
