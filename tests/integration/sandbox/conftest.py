"""The sandbox served on a free loopback port (one server per module, reset to its seeded state for each test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from castiel.clock import ManualClock
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.state import Sandbox
from tests.integration.conftest import START

RECORDS = 30
AUTH = {"Authorization": "Bearer sandbox-token"}


@pytest.fixture(scope="module")
def sandbox_records() -> int:
    return RECORDS


@pytest.fixture
def server(server: SandboxServer, module_clock: ManualClock) -> SandboxServer:
    """The module's server, its clock and state back to the start."""
    module_clock.value = START
    server.sandbox.reset()
    return server


@pytest.fixture
def sandbox(server: SandboxServer) -> Sandbox:
    return server.sandbox


@pytest.fixture
async def client(server: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        yield http
