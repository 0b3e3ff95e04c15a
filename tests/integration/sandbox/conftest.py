"""The sandbox served on a free loopback port (one server per module, reset to its seeded state for each test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from castiel.clock import ManualClock
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.state import Sandbox

START = 1_735_862_400.0  # 2025-01-03T00:00:00Z, after every seeded record
RECORDS = 30
AUTH = {"Authorization": "Bearer sandbox-token"}


@pytest.fixture(scope="module")
def module_clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(scope="module")
async def module_server(module_clock: ManualClock) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(Sandbox(records=RECORDS, clock=module_clock)) as server:
        yield server


@pytest.fixture
def server(module_server: SandboxServer, module_clock: ManualClock) -> SandboxServer:
    module_clock.value = START
    module_server.sandbox.reset()
    return module_server


@pytest.fixture
def sandbox(server: SandboxServer) -> Sandbox:
    return server.sandbox


@pytest.fixture
async def client(server: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        yield http
