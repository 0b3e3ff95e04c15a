"""One ``castiel serve`` per data directory, with the directory's one embedded Redis, which CLI commands share and
which dies with the host even on ``kill -9``; ``castiel status`` says whether a host runs and when it schedules next."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from castiel.backends import data_dir_redis
from castiel.cli import app
from castiel.cli.common import with_redis
from castiel.devhost.timers import next_fire
from tests.e2e.conftest import REPO, WAIT_TIMEOUT, DevHost, StartHost, host_env
from tests.e2e.processes import eventually, is_running


def redis_record(host: DevHost) -> data_dir_redis.RedisRecord:
    record = data_dir_redis.read_record(host.data_dir)
    assert record is not None, "no redis.json in the host's data directory"
    return record


async def test_a_kill_9_of_serve_takes_its_embedded_redis_with_it(start_host: StartHost) -> None:
    host = await start_host(embedded_redis=True)
    record = redis_record(host)
    assert record.started_by == host.process.pid
    assert is_running(record.pid)

    host.process.kill()
    await asyncio.wait_for(host.process.wait(), WAIT_TIMEOUT)

    await asyncio.to_thread(eventually, lambda: not is_running(record.pid), "the killed host's Redis to stop")
    await asyncio.to_thread(eventually, lambda: not is_running(record.supervisor_pid), "its supervisor to exit")


async def test_a_second_serve_on_the_same_data_directory_refuses_to_start(start_host: StartHost) -> None:
    host = await start_host(embedded_redis=True)
    second = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "castiel.cli", "serve", "--port", "0"],
        cwd=REPO,
        env=host_env(host.data_dir, None),
        capture_output=True,
        text=True,
        timeout=WAIT_TIMEOUT,
    )
    assert second.returncode == 1
    [line] = second.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: a `castiel serve` is already running on data directory")
    assert f"pid {host.process.pid} on {host.url}" in line
    assert "Traceback" not in second.stderr
    assert host.process.returncode is None
    assert await host.stop() == 0


async def test_a_cli_command_uses_the_redis_of_the_running_serve(
    start_host: StartHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = await start_host(embedded_redis=True)
    served = re.search(r"runtime.embedded_redis url=(\S+)", host.log())
    assert served is not None
    monkeypatch.setenv("CASTIEL_DATA_DIR", str(host.data_dir))
    monkeypatch.delenv("REDIS_URL", raising=False)

    async def mark(client: aioredis.Redis) -> dict[str, str]:
        await client.set("e2e:marker", "from the CLI")
        info: dict[str, str] = await client.info("server")
        return info

    info = await with_redis(mark)

    assert info["run_id"] == redis_record(host).run_id
    serve_client = aioredis.Redis.from_url(served[1])
    try:
        assert await serve_client.get("e2e:marker") == b"from the CLI"
    finally:
        await serve_client.aclose()
    assert is_running(redis_record(host).pid), "the CLI command stopped the serve's Redis"
    assert await host.stop() == 0


async def test_status_says_a_serve_runs_and_when_the_scheduler_fires_next(start_host: StartHost) -> None:
    host = await start_host()
    before = datetime.now(UTC)
    result = await asyncio.to_thread(CliRunner().invoke, app, ["status", "--json"], env=host_env(host.data_dir, None))
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)

    assert report["dataDir"] == str(host.data_dir)
    assert report["serve"]["running"] is True
    assert (report["serve"]["pid"], report["serve"]["url"]) == (host.process.pid, host.url)
    scheduler = report["scheduler"]
    assert scheduler["schedule"] == "0 0 * * * *"
    expected = {next_fire("0 0 * * * *", before), next_fire("0 0 * * * *", after)}
    assert datetime.fromisoformat(scheduler["nextRunAt"]) in expected
    assert await host.stop() == 0
