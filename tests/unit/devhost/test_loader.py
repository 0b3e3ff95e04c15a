"""Loading a FunctionApp, reading its triggers, and the route table the dev host serves."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from castiel.devhost.http import STATUS_PATH, HttpApp, route_pattern
from castiel.devhost.loader import (
    Binding,
    HttpBinding,
    QueueBinding,
    TimerBinding,
    caller,
    discover,
    load_app,
    resolve_app_settings,
)
from castiel.errors import ConfigError

REAL_BINDINGS: dict[str, Binding] = {
    "sync_scheduler": TimerBinding("0 0 * * * *", run_on_startup=False),
    "sync_inbound_worker": QueueBinding("sync-inbound", sdk_message=True, auto_complete=False),
    "sync_outbound_worker": QueueBinding("sync-outbound", sdk_message=True, auto_complete=False),
    "token_refresher": TimerBinding("0 0 */6 * * *", run_on_startup=False),
    "webhook_receiver": HttpBinding("webhooks/{registrationId}/events", frozenset({"POST"})),
}


def test_the_real_app_gives_every_function_its_trigger() -> None:
    assert {fn.name: fn.binding for fn in discover(function_app.app)} == REAL_BINDINGS


def test_only_restricts_the_functions() -> None:
    names = [fn.name for fn in discover(function_app.app, {"token_refresher", "webhook_receiver"})]
    assert sorted(names) == ["token_refresher", "webhook_receiver"]


def test_only_with_an_unknown_name_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="sync_schedular"):
        discover(function_app.app, {"sync_schedular"})


def test_route_table_of_the_real_app() -> None:
    app = HttpApp(discover(function_app.app), timeout=None)
    table = {route.function.name if route.function else STATUS_PATH: route.methods for route in app.routes}
    assert table == {STATUS_PATH: {"GET", "HEAD"}, "webhook_receiver": {"POST"}}
    assert app.routes[1].pattern.fullmatch("/webhooks/reg-1/events")


@pytest.mark.parametrize(
    ("route", "path", "params"),
    [
        ("webhooks/{registrationId}/events", "/webhooks/r-1/events", {"registrationId": "r-1"}),
        ("/items/{id:int}/", "/items/42", {"id": "42"}),
        ("files/{*rest}", "/files/a/b.txt", {"rest": "a/b.txt"}),
        ("plain", "/plain", {}),
        ("a.b", "/a.b", {}),
        ("", "/", {}),
    ],
)
def test_functions_route_templates_match_their_paths(route: str, path: str, params: dict[str, str]) -> None:
    match = route_pattern(route).fullmatch(path)
    assert match is not None
    assert match.groupdict() == params


@pytest.mark.parametrize(
    ("route", "path"),
    [
        ("webhooks/{registrationId}/events", "/webhooks/a/b/events"),
        ("webhooks/{registrationId}/events", "/webhooks//events"),
        ("a.b", "/axb"),
        ("plain", "/plain/more"),
    ],
)
def test_functions_route_templates_refuse_other_paths(route: str, path: str) -> None:
    assert route_pattern(route).fullmatch(path) is None


@pytest.mark.parametrize("route", ["items/{id?}", "items/{id=7}", "items/{}"])
def test_route_parameters_the_dev_host_cannot_serve_are_refused(route: str) -> None:
    with pytest.raises(ConfigError, match="not supported"):
        route_pattern(route)


def test_defaults_unsupported_triggers_and_sync_functions(caplog: pytest.LogCaptureFixture) -> None:
    app = func.FunctionApp()

    @app.route()
    def hello(req: func.HttpRequest) -> str:
        return "hi"

    @app.blob_trigger(arg_name="blob", path="in/{name}", connection="Storage")
    def on_blob(blob: func.InputStream) -> None:
        return None

    with caplog.at_level(logging.WARNING, logger="castiel.devhost"):
        hosted = discover(app)
    # No route means the function's name, no methods means every method, like the Functions host.
    assert [(fn.name, fn.binding) for fn in hosted] == [("hello", HttpBinding("hello", None))]
    assert "function=on_blob trigger=blobTrigger" in caplog.text


def test_queue_names_are_binding_expressions_resolved_from_the_app_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # App setting names compare case-insensitively, as in the Functions host's configuration.
    monkeypatch.setenv("service_bus_queue", "tenant-a-inbound")
    monkeypatch.delenv("SERVICE_BUS_QUEUE_OUTBOUND", raising=False)

    bindings = {fn.name: fn.binding for fn in discover(function_app.app)}

    assert bindings["sync_inbound_worker"] == QueueBinding("tenant-a-inbound", sdk_message=True, auto_complete=False)
    # Unset: the default Settings declares, the queue the runtime sends to.
    assert bindings["sync_outbound_worker"] == QueueBinding("sync-outbound", sdk_message=True, auto_complete=False)


def test_a_binding_expression_without_a_setting_puts_only_its_function_in_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NIGHTLY_SCHEDULE", "0 30 2 * * *")
    app = func.FunctionApp()

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="%NO_SUCH_QUEUE_SETTING%", connection="SB")
    async def orphan(msg: func.ServiceBusMessage) -> None:
        return None

    @app.timer_trigger(schedule="%NIGHTLY_SCHEDULE%", arg_name="timer")
    async def nightly(timer: func.TimerRequest) -> None:
        return None

    with caplog.at_level(logging.ERROR, logger="castiel.devhost"):
        hosted = discover(app)

    assert [(fn.name, fn.binding) for fn in hosted] == [("nightly", TimerBinding("0 30 2 * * *", False))]
    assert "function=orphan" in caplog.text
    assert "'%NO_SUCH_QUEUE_SETTING%' does not resolve" in caplog.text


def test_every_expression_in_a_value_is_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION_PREFIX", "weu")
    monkeypatch.setenv("SERVICE_BUS_QUEUE", "in")

    assert resolve_app_settings("%REGION_PREFIX%-%SERVICE_BUS_QUEUE%-1", "f") == "weu-in-1"
    assert resolve_app_settings("plain-name", "f") == "plain-name"


async def test_sync_functions_run_in_a_worker_thread_and_async_ones_on_the_loop() -> None:
    def sync_fn(req: str) -> str:
        return f"{req} on {threading.current_thread().name}"

    async def async_fn(msg: str) -> str:
        return f"{msg} on {threading.current_thread().name}"

    loop_thread = threading.current_thread().name
    assert await caller(async_fn, "msg")("a") == f"a on {loop_thread}"
    sync_result = await caller(sync_fn, "req")("b")
    assert sync_result.startswith("b on ")
    assert sync_result != f"b on {loop_thread}"


def test_load_app_finds_the_app_and_its_directory() -> None:
    loaded = load_app("function_app:app")
    assert loaded.app is function_app.app
    assert (loaded.directory / "host.json").is_file()
    assert loaded.directory == Path(function_app.__file__).parent


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("function_app", "module:attribute"),
        (":app", "module:attribute"),
        ("no_such_module_here:app", "no module 'no_such_module_here'"),
        ("function_app:nothing", "not an azure.functions.FunctionApp"),
        ("function_app:settings", "not an azure.functions.FunctionApp"),
    ],
)
def test_load_app_refuses_what_is_not_an_app(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_app(spec)
