"""One invalid app setting must not stop the function app from loading (issue 16 item 4): the module reads no
setting at import, the queue names are binding expressions, and the settings are validated when the runtime is
first built, so each invocation reports the problem until it is fixed, and the next one after that just works."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.devhost.convert import InvocationContext, sdk_message_from
from castiel.errors import ConfigError
from castiel.ports import ReceivedMessage
from castiel.runtime import close_runtime

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# What an app setting holds right after a deployment, before the platform has resolved the Key Vault reference.
UNRESOLVED = "@Microsoft.KeyVault(SecretUri=https://castiel-kv.vault.azure.net/secrets/batch-size/)"


@pytest.fixture
def reloaded(data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``function_app`` imported afresh with ``SYNC_BATCH_SIZE`` holding an unresolved Key Vault reference."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("SYNC_BATCH_SIZE", UNRESOLVED)
    importlib.reload(function_app)
    yield
    monkeypatch.delenv("SYNC_BATCH_SIZE")
    importlib.reload(function_app)


def functions() -> dict[str, func.FunctionBuilder]:
    function_app.app.functions_bindings = None  # the library lists an app's functions once per app object
    return {fn.get_function_name(): fn for fn in function_app.app.get_functions()}


def webhook(registration_id: str) -> func.HttpRequest:
    return func.HttpRequest(
        method="POST",
        url=f"http://localhost/webhooks/{registration_id}/events",
        route_params={"registrationId": registration_id},
        body=b"{}",
    )


async def test_the_app_loads_and_each_invocation_reports_the_invalid_setting(
    reloaded: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await close_runtime()
    registered = functions()
    assert len(registered) == 5

    with caplog.at_level(logging.ERROR, logger="castiel"):
        context = InvocationContext("invocation-1", "webhook_receiver", ".", None)
        answered = await registered["webhook_receiver"].get_user_function()(webhook("reg-1"), context=context)
        locked = ReceivedMessage(body=b"{}", message_id="m-1", sequence_number=1, delivery_count=1, enqueued_time=NOW)
        inbound = registered["sync_inbound_worker"].get_user_function()
        with pytest.raises(ConfigError, match="SYNC_BATCH_SIZE"):
            # No runtime, no queue: the settings fail before the message or its actions are touched.
            await inbound(sdk_message_from(locked), actions=None, context=context)

    assert answered.status_code == 503
    assert "misconfigured" in json.loads(answered.get_body())["error"]
    errors = [record.getMessage() for record in caplog.records if "runtime.config_error" in record.getMessage()]
    assert len(errors) == 2
    assert all("SYNC_BATCH_SIZE" in line for line in errors)
    assert not [line for line in errors if "vault.azure.net" in line]

    # Once the platform resolves the reference, the next invocation builds the runtime: nothing to restart.
    monkeypatch.setenv("SYNC_BATCH_SIZE", "50")
    try:
        recovered = await registered["webhook_receiver"].get_user_function()(webhook("nope"), context=context)
    finally:
        await close_runtime()
    assert recovered.status_code == 404


def test_the_queue_triggers_name_their_queues_by_app_setting(reloaded: None) -> None:
    queues = {
        name: json.loads(fn.get_function_json())["bindings"][0]["queueName"]
        for name, fn in functions().items()
        if name.endswith("_worker")
    }

    assert queues == {
        "sync_inbound_worker": "%SERVICE_BUS_QUEUE%",
        "sync_outbound_worker": "%SERVICE_BUS_QUEUE_OUTBOUND%",
    }
