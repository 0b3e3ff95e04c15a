"""``castiel connections test|fetch`` against the sandbox, and ``castiel sandbox serve`` as a process.

The CLI runs in-process (``CliRunner``) on a worker thread, since it runs its own event loop, while the sandbox serves
on the test's loop; its data directory is the test's, its Redis the test server.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from typer.testing import Result

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.clock import ManualClock
from castiel.sandbox.server import SandboxServer
from tests.integration.cli.helpers import invoke

pytestmark = pytest.mark.usefixtures("cli_env")


@pytest.fixture
def sandboxed(server: SandboxServer, clock: ManualClock) -> SandboxServer:
    """The module's sandbox back to its seeded state."""
    server.sandbox.reset()
    return server


@pytest.fixture
def cli_env(
    data_dir: Path, redis_server: EmbeddedRedis, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The test's data directory, and the test Redis (flushed: no rate-limit state from an earlier test)."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return data_dir


async def castiel(*args: str, expect: int = 0) -> Result:
    result = await asyncio.to_thread(invoke, *args)
    assert result.exit_code == expect, (result.stdout, result.stderr)
    return result


async def add_github(server: SandboxServer, repository: str = "acme/widgets") -> None:
    await castiel(
        "connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh",
        "--base-url", server.base_urls()["github"], "--settings", json.dumps({"repository": repository}),
        "--conflict-strategy", "newest_wins", "--dedup-strategy", "content_hash",
    )  # fmt: skip
    await castiel(
        "credentials", "add", "--tenant", "acme", "--connection", "gh", "--type", "bearer_token",
        "--value", "sandbox-token", "--id", "gh-token",
    )  # fmt: skip


def lines(result: Result) -> tuple[list[dict[str, Any]], str | None]:
    *records, last = (json.loads(line) for line in result.stdout.splitlines())
    return records, last["cursor"]


async def test_connections_add_keeps_settings_credential_and_strategies(sandboxed: SandboxServer) -> None:
    await add_github(sandboxed)
    [stored] = json.loads((await castiel("connections", "list", "--json")).stdout)
    assert stored["settings"] == {"repository": "acme/widgets"}
    assert (stored["credentialId"], stored["conflictStrategy"], stored["dedupStrategy"]) == (
        "gh-token",
        "newest_wins",
        "content_hash",
    )


async def test_test_prints_the_health_report_and_discovery(sandboxed: SandboxServer) -> None:
    await add_github(sandboxed)
    report = json.loads((await castiel("connections", "test", "gh", "--tenant", "acme")).stdout)
    assert report["ok"]
    assert report["discovery"]["entities"][0]["name"] == "issue"


async def test_fetch_prints_records_then_the_cursor_and_goes_on_from_it(sandboxed: SandboxServer) -> None:
    await add_github(sandboxed)
    records, cursor = lines(await castiel("connections", "fetch", "gh", "--entity-type", "issue"))
    assert len(records) == sum(
        1 for item in sandboxed.sandbox.github.issues.after(None) if "pull_request" not in item.body
    )
    assert set(records[0]) == {"entityType", "externalId", "updatedAt", "deleted", "data"}
    assert cursor is not None

    [edited] = sandboxed.sandbox.edit("github", count=1)
    changed, _ = lines(await castiel("connections", "fetch", "gh", "--entity-type", "issue", "--since", cursor))
    assert [record["externalId"] for record in changed] == [str(edited["id"])]


async def test_limit_stops_early_and_the_cursor_is_that_of_the_last_whole_page(sandboxed: SandboxServer) -> None:
    await add_github(sandboxed)
    few, cursor = lines(await castiel("connections", "fetch", "gh", "--entity-type", "issue", "--limit", "3"))
    assert (len(few), cursor) == (3, None)  # the first page was not printed whole
    more, cursor = lines(await castiel("connections", "fetch", "gh", "--entity-type", "issue", "--limit", "95"))
    assert len(more) == 95
    assert cursor is not None
    assert json.loads(cursor)["since"] == more[89]["updatedAt"]  # page one: 90 issues, 10 pull requests


async def test_a_provider_error_is_one_line_naming_the_connection_and_the_providers_message(
    sandboxed: SandboxServer,
) -> None:
    await add_github(sandboxed)
    sandboxed.sandbox.faults.configure("github", retry_after=30, next_statuses=[429])
    result = await castiel("connections", "fetch", "gh", "--entity-type", "issue", expect=1)
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "error: github connection gh: GET /github/repos/acme/widgets/issues: HTTP 429 You have exceeded a secondary "
        "rate limit. Please wait a few minutes before you try again."
    )


async def test_a_failed_health_check_prints_the_report_and_one_error_line(sandboxed: SandboxServer) -> None:
    await add_github(sandboxed, repository="acme/nothing")
    result = await castiel("connections", "test", "gh", expect=1)
    assert json.loads(result.stdout)["ok"] is False
    assert result.stderr.strip() == "error: github connection gh: GET /github/repos/acme/nothing: HTTP 404 Not Found"


async def test_unknown_connection_and_bad_settings(sandboxed: SandboxServer) -> None:
    await add_github(sandboxed)
    missing = await castiel("connections", "fetch", "nope", "--entity-type", "issue", expect=1)
    assert missing.stderr.strip() == "error: connection 'nope' not found"
    bad = await castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--settings", "[1]", expect=2)
    assert "is not a JSON object" in bad.stderr


async def test_sandbox_serve_prints_each_base_url_and_serves_until_interrupted() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "castiel.cli", "sandbox", "serve", "--port", "0", "--records", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        printed = [(await asyncio.wait_for(process.stdout.readline(), 30)).decode().split() for _ in range(6)]
        urls = dict(printed)
        assert list(urls) == ["salesforce", "notion", "slack", "github", "google", "controls"]
        async with httpx.AsyncClient() as http:
            summary = (await http.get(urls["controls"])).json()
        assert summary["baseUrls"]["slack"] == urls["slack"]
        assert summary["records"]["github"] == {"issue": 3}
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)
    assert b"Traceback" not in await process.stderr.read()


async def test_sandbox_serve_on_a_port_in_use_is_one_line(sandboxed: SandboxServer) -> None:
    port = sandboxed.url.rsplit(":", 1)[1]
    result = await castiel("sandbox", "serve", "--port", port, expect=1)
    assert result.stderr.startswith(f"error: the sandbox cannot listen on 127.0.0.1:{port}")
