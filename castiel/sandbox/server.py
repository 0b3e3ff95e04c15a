"""Serving the sandbox on loopback with uvicorn, in the caller's event loop.

``SandboxServer`` is an async context manager: on entry the app listens (port 0 picks a free one) and ``url`` is
known; the stand-in OAuth provider then names ``<url>/salesforce`` as Salesforce's instance URL, so a credential
obtained from it leads the adapter to the Salesforce stand-in. On exit the server stops.

Signals belong to whoever runs the loop. uvicorn's own handling replaces the process's SIGINT/SIGTERM handlers while
it serves and raises the signal again once it has stopped: inside ``castiel serve --sandbox`` that turned one Ctrl-C
into the host's graceful stop and, 0.1 s later, its forced stop, and on its own the re-raised signal met asyncio's
handler or none depending on timing. So the server leaves signals alone: the dev host stops it, and ``castiel sandbox
serve`` waits for SIGINT or SIGTERM itself (``stop_signals``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from castiel.errors import ConfigError, PermanentError
from castiel.sandbox.app import build_app
from castiel.sandbox.state import Sandbox

_START_TIMEOUT = 10.0


class _SignalsLeftAlone(uvicorn.Server):
    """uvicorn without its own signal handling: the process's owner (the dev host) stops the server itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SandboxServer:
    """``sandbox`` served at ``http://<host>:<port>`` until the context exits."""

    def __init__(self, sandbox: Sandbox, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox
        config = uvicorn.Config(build_app(sandbox), host=host, port=port, log_level="warning", lifespan="off")
        self._server = _SignalsLeftAlone(config)
        self._address = (host, port)
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def __aenter__(self) -> SandboxServer:
        # Bound here, not by uvicorn, so a port in use is an error of ours rather than uvicorn's sys.exit.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it a response's head and body wait on a delayed ACK (~40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind(self._address)
        except OSError as exc:
            sock.close()
            message = f"the sandbox cannot listen on {self._address[0]}:{self._address[1]}: {exc}"
            # A port in use or reserved is the machine's state, not a bad flag (as for the dev host's own port).
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PermanentError(message) from None
            raise ConfigError(message) from None
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(_START_TIMEOUT):
            while not self._server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                await asyncio.sleep(0.01)
        self.url = f"http://{self._address[0]}:{sock.getsockname()[1]}"
        self.sandbox.oauth.instance_url = f"{self.url}/salesforce"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task

    def base_urls(self) -> dict[str, str]:
        """Each provider's ``baseUrl``."""
        return self.sandbox.base_urls(self.url)


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (in the running loop): for ``castiel sandbox serve``,
    which owns its process. Entered before anything is printed, so a signal sent as soon as it is is handled."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    taken: list[signal.Signals] = []
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except RuntimeError:  # a loop off the main thread (a test's runner): the signals are not its to take
                break
            taken.append(signum)
        yield stop
    finally:
        for signum in taken:
            loop.remove_signal_handler(signum)
