"""One stop signal stops ``castiel serve --sandbox`` gracefully, as it does a plain ``castiel serve``: the sandbox in
the host's process leaves signals to the host. ``castiel sandbox serve`` alone stops gracefully on one Ctrl-C too."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from castiel.backends.embedded_redis import free_port
from tests.e2e.conftest import REPO, WAIT_TIMEOUT, StartHost, host_env


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_one_stop_signal_stops_serve_sandbox_gracefully(start_host: StartHost, signum: signal.Signals) -> None:
    host = await start_host("--sandbox", "--sandbox-port", str(free_port()), "--sandbox-records", "1")
    await host.wait_until(lambda: "devhost.sandbox_ready" in host.log(), "the demo to be seeded")

    host.process.send_signal(signum)

    assert await asyncio.wait_for(host.process.wait(), WAIT_TIMEOUT) == 0, host.log()
    log = host.log()
    assert f"devhost.stopping signal={signum.name}" in log
    assert "devhost.forced_stop" not in log
    assert "devhost.already_stopping" not in log
    assert "devhost.stopped" in log


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_one_stop_signal_stops_sandbox_serve_on_its_own(tmp_path: Path, signum: signal.Signals) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "castiel.cli", "sandbox", "serve", "--port", "0", "--records", "1",
        cwd=REPO, env=host_env(tmp_path / "data", None), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(WAIT_TIMEOUT):
        while not (await process.stdout.readline()).startswith(b"controls"):  # the last line once it listens
            pass

    process.send_signal(signum)

    assert await asyncio.wait_for(process.wait(), WAIT_TIMEOUT) == 0
