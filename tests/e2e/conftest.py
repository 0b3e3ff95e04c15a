"""The dev host as a real process: start it on a free port over its own data directory, talk to it, stop it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from castiel.backends.embedded_redis import EmbeddedRedis, free_port
from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.settings import BACKEND_SELECTORS

REPO = Path(__file__).parents[2]
START_TIMEOUT = 30.0
WAIT_TIMEOUT = 30.0


@dataclass
class DevHost:
    """A running dev host process and where to reach it."""

    process: asyncio.subprocess.Process
    url: str
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def invocations(self, function: str) -> list[str]:
        """The outcome of every invocation line of ``function`` so far."""
        return re.findall(rf"invocation function={function} .*?outcome=(\w+)", self.log())

    async def wait_until(self, condition: Callable[[], Awaitable[bool] | bool], what: str) -> None:
        async with asyncio.timeout(WAIT_TIMEOUT):
            while True:
                outcome = condition()
                if await outcome if isinstance(outcome, Awaitable) else outcome:
                    return
                if self.process.returncode is not None:
                    pytest.fail(f"dev host exited ({self.process.returncode}) waiting for {what}:\n{self.log()}")
                await asyncio.sleep(0.05)

    async def stop(self) -> int:
        """SIGTERM, then the exit status (bounded)."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), WAIT_TIMEOUT)

    def queue(self) -> SqliteMessageQueue:
        """The host's own queue file, opened from this process (as the CLI or another worker would)."""
        return SqliteMessageQueue(self.data_dir / DATABASE_FILE)


StartHost = Callable[..., Awaitable[DevHost]]


def host_env(data_dir: Path, redis_url: str | None) -> dict[str, str]:
    """The environment of a ``castiel`` process on ``data_dir``: no Azure settings, and ``REDIS_URL`` only when
    given (else the data directory's embedded Redis)."""
    env = {name: value for name, value in os.environ.items() if name.upper() not in BACKEND_SELECTORS}
    env["CASTIEL_DATA_DIR"] = str(data_dir)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env


def castiel(data_dir: Path, *args: str) -> Any:
    """Run a ``castiel`` command against the host's data directory and parse its JSON output."""
    done = subprocess.run(
        [sys.executable, "-m", "castiel.cli", *args],
        env=host_env(data_dir, None),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
async def start_host(tmp_path: Path, redis_server: EmbeddedRedis) -> AsyncIterator[StartHost]:
    started: list[DevHost] = []

    async def start(*args: str, data_dir: Path | None = None, embedded_redis: bool = False) -> DevHost:
        """Start ``castiel serve`` (on the session's Redis unless ``embedded_redis``) and wait until it answers."""
        port = free_port()
        data_dir = data_dir or tmp_path / f"data{len(started)}"
        log_path = tmp_path / f"devhost{len(started)}.log"
        env = host_env(data_dir, None if embedded_redis else redis_server.url)
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "castiel.cli",
                "serve",
                "--port",
                str(port),
                *args,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        host = DevHost(process, f"http://127.0.0.1:{port}", data_dir, log_path)
        started.append(host)
        await host.wait_until(lambda: _answers(host.url), "readiness")
        return host

    yield start
    for host in started:
        if host.process.returncode is None:
            host.process.kill()
            await asyncio.wait_for(host.process.wait(), WAIT_TIMEOUT)


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            response = await client.get(f"{url}/admin/host/status")
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json() == {"state": "Running"}
