"""A secret never leaves the secret store except into an outgoing request (issue 11 item 2).

A full cycle — add, connect, refresh, rotate, a failing refresh, and the Functions' scheduler and token refresher —
runs with distinctive values; then every captured log line, every command's output, every byte of the data directory
but the secrets file (the SQLite database with its documents and queue, its WAL) and every Redis value is searched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.cli import app
from castiel.models import Provider
from castiel.runtime import close_runtime, get_runtime
from tests.integration.credentials.conftest import CLIENT_ID, CLIENT_SECRET, TOKEN_PREFIX, StandIn

API_KEY = "zqAPIKEYzq-1"
ROTATED_API_KEY = "zqAPIKEYzq-2"
PASSWORD = "zqPASSWORDzq"
WEBHOOK_SECRETS = ("zqWEBHOOKzq-1", "zqWEBHOOKzq-2", "zqWEBHOOKzq-3")


class Session:
    """The commands of one operator session, their outputs kept."""

    def __init__(self) -> None:
        self.outputs: list[str] = []

    def run(self, *args: str, expect: int = 0) -> str:
        result = CliRunner().invoke(app, list(args))
        self.outputs.append(result.output)
        assert result.exit_code == expect, result.output
        return result.stdout


def browse_in_background(url: str) -> bool:
    """Stands in for ``open_browser``: a person who approves in a browser, a moment later."""
    threading.Thread(target=lambda: httpx.get(url, follow_redirects=True, timeout=30), daemon=True).start()
    return True


async def run_functions() -> None:
    """What the ``sync_scheduler`` and ``token_refresher`` timers run, on the process runtime."""
    await close_runtime()
    runtime = await get_runtime()
    try:
        await runtime.scheduler.run()
        await runtime.refresher.run()
    finally:
        await close_runtime()


async def redis_values(url: str) -> bytes:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        return b"".join([await client.dump(key) or b"" async for key in client.scan_iter()])
    finally:
        await client.aclose()


def test_no_secret_in_any_log_line_output_document_queue_message_or_redis_value(
    data_dir: Path,
    redis_server: EmbeddedRedis,
    oauth: StandIn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setattr("castiel.cli.credentials.open_browser", browse_in_background)
    asyncio.run(_flush(redis_server.url))
    seen_tokens: set[str] = set()
    cli = Session()

    cli.run("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh")
    cli.run("connections", "add", "--tenant", "acme", "--provider", "google", "--id", "gc")
    cli.run("connections", "add", "--tenant", "acme", "--provider", "notion", "--id", "nt")
    cli.run("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "task-1")
    cli.run("credentials", "add", "--tenant", "acme", "--connection", "gc", "--type", "api_key", "--value", API_KEY,
            "--id", "key")  # fmt: skip
    basic = tmp_path / "basic.json"
    basic.write_text(json.dumps({"username": "ops", "password": PASSWORD}))
    cli.run("credentials", "add", "--tenant", "acme", "--connection", "nt", "--type", "basic_auth", "--from-file",
            str(basic))  # fmt: skip

    connected = json.loads(
        cli.run(
            "credentials",
            "connect",
            "--tenant",
            "acme",
            "--connection",
            "gh",
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--authorize-url",
            oauth.authorize_url(Provider.GITHUB),
            "--token-url",
            oauth.token_url(Provider.GITHUB),
            "--timeout",
            "30",
        )
    )
    (grant,) = oauth.sandbox.grants.values()
    seen_tokens |= {grant.access_token, str(grant.refresh_token)}
    cli.run("credentials", "refresh", connected["id"])
    seen_tokens |= {grant.access_token, str(grant.refresh_token)}
    cli.run("credentials", "rotate", "key", "--value", ROTATED_API_KEY)
    hook = json.loads(cli.run("webhooks", "add", "--tenant", "acme", "--connection", "gh", "--provider", "github",
                              "--secret", WEBHOOK_SECRETS[0], "--rotation-days", "30"))  # fmt: skip
    cli.run("webhooks", "rotate", hook["id"], "--secret", WEBHOOK_SECRETS[1])
    cli.run("credentials", "rotate", hook["credentialId"], "--value", WEBHOOK_SECRETS[2])
    cli.run("credentials", "show", hook["credentialId"], "--json")
    cli.run("webhooks", "list", "--json")
    cli.run("credentials", "show", connected["id"], "--json")
    cli.run("credentials", "list", "--json")
    asyncio.run(run_functions())
    oauth.sandbox.control(grant.id, refuse="invalid_grant")
    failed = cli.run("credentials", "refresh", connected["id"], expect=1)
    cli.run("credentials", "list")

    secrets = {API_KEY, ROTATED_API_KEY, PASSWORD, CLIENT_SECRET, *WEBHOOK_SECRETS, *seen_tokens}
    assert len(seen_tokens) == 4
    # The values are real: the secret store holds the current ones.
    secrets_file = (data_dir / "secrets.json").read_text()
    current_values = (ROTATED_API_KEY, PASSWORD, CLIENT_SECRET, WEBHOOK_SECRETS[2], grant.access_token)
    for current in (*current_values, str(grant.refresh_token)):
        assert current in secrets_file
    assert failed == ""  # the failure went to stderr, as one line
    assert any("refresh refused by github: github token endpoint: bad_refresh_token" in out for out in cli.outputs)

    stored = b"".join(
        path.read_bytes()
        for path in sorted(data_dir.rglob("*"))
        if path.is_file() and not path.name.startswith("secrets.json")
    )
    assert b"sync-inbound" in stored  # the scheduler's message is in the searched bytes
    assert b"token-refresh-audit" in stored
    places = {
        "log lines": caplog.text,
        "command output": "\n".join(cli.outputs),
        "data directory": stored.decode("latin-1"),
        "redis": asyncio.run(redis_values(redis_server.url)).decode("latin-1"),
    }
    leaks = {(where, secret) for where, text in places.items() for secret in secrets if secret in text}
    assert leaks == set()
    assert not any(TOKEN_PREFIX in text for text in places.values())


async def _flush(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
