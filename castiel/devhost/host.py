"""The dev host: runs a ``FunctionApp``'s functions in one process without the Azure Functions runtime.

HTTP triggers on uvicorn, timers on their schedules, Service Bus triggers on the runtime's queue (DESIGN §9).
One host per data directory (``instance.py``): a second refuses to start.

Shutdown is bounded. SIGINT or SIGTERM stops the HTTP listener (idle keep-alive connections are closed at once), the
timers and the receivers; invocations in flight get the grace period (``CASTIEL_SHUTDOWN_GRACE_SECONDS``, or
``serve --grace-period``) to finish and settle their messages. Past it they are cancelled (their messages are
redelivered when their locks expire) and every HTTP connection still open is closed; then the runtime is closed.
A second SIGINT stops the process at once, as the first stop's log line says.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from castiel.devhost.config import HostConfig, read_host_config
from castiel.devhost.http import HttpApp, HttpServer
from castiel.devhost.instance import ServeLock
from castiel.devhost.loader import HostedFunction, QueueBinding, TimerBinding, discover, load_app
from castiel.devhost.queues import QueuePump
from castiel.devhost.sandboxed import DemoSandbox, SandboxOptions
from castiel.devhost.timers import TimerRunner
from castiel.runtime import Runtime, close_runtime, get_runtime
from castiel.settings import get_settings, use_settings
from castiel.telemetry import log_event

# After the grace period, how long cancelled work gets to unwind before the host stops waiting for it.
_CANCEL_WAIT_SECONDS = 5.0
# The exit status of a process ended by SIGINT, which a forced stop is.
_FORCED_EXIT_STATUS = 128 + signal.SIGINT


@dataclass(frozen=True, slots=True)
class HostOptions:
    """What ``castiel serve`` asks for: where to listen, which app and functions, whether timers fire at start."""

    port: int = 7071
    host: str = "127.0.0.1"
    run_timers_now: bool = False
    only: frozenset[str] = field(default_factory=frozenset)
    app: str = "function_app:app"
    grace_period: float | None = None  # None: CASTIEL_SHUTDOWN_GRACE_SECONDS
    sandbox: SandboxOptions | None = None
    """``--sandbox``: serve the provider stand-ins and a demo tenant too (``sandboxed.py``)."""


def serve(options: HostOptions) -> None:
    """Run the host until SIGINT or SIGTERM, then shut down within the grace period and return.

    Raises ``ConfigError`` when the app, ``host.json``, the settings or the interface are unusable, before anything
    starts; ``PermanentError`` when the port is taken, another host runs on the data directory, or the data
    directory is unusable.
    """
    app = _load(options)
    configure_logging()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run_host(options, app))


@dataclass(frozen=True, slots=True)
class _LoadedFunctions:
    functions: list[HostedFunction]
    config: HostConfig


def _load(options: HostOptions) -> _LoadedFunctions:
    loaded = load_app(options.app)
    return _LoadedFunctions(discover(loaded.app, options.only), read_host_config(loaded.directory))


def configure_logging() -> None:
    """Log lines at INFO to stderr (the invocation lines among them)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("castiel").setLevel(logging.INFO)
    # One line per outgoing provider call would drown the invocation lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def run_host(options: HostOptions, loaded: _LoadedFunctions) -> None:
    """Claim the data directory, run every trigger of the app until a stop signal, drain, close the runtime."""
    settings = get_settings()
    grace = settings.shutdown_grace_seconds if options.grace_period is None else options.grace_period
    claim = ServeLock.acquire(settings.data_dir, app=options.app)
    signals = _StopSignals(grace)
    loop = asyncio.get_running_loop()
    for signum in _SIGNALS:
        loop.add_signal_handler(signum, signals.received, signum)
    try:
        if options.sandbox is None:
            await _Host(options, loaded.config, loaded.functions, grace, claim).run(signals.stop)
        else:
            async with DemoSandbox(options.sandbox, settings.data_dir) as demo:
                use_settings(demo.settings_for(settings))
                host = _Host(options, loaded.config, loaded.functions, grace, claim, on_started=demo.started)
                await host.run(signals.stop)
    finally:
        for signum in _SIGNALS:
            loop.remove_signal_handler(signum)
        try:
            await close_runtime()
        finally:
            claim.release()


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _StopSignals:
    """The first SIGINT or SIGTERM asks for a graceful stop; a second SIGINT ends the process at once."""

    def __init__(self, grace: float) -> None:
        self.stop = asyncio.Event()
        self._grace = grace
        self._signalled = False

    def received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._signalled:
            self._signalled = True
            log_event(
                "devhost.stopping",
                signal=name,
                grace_seconds=f"{self._grace:g}",
                force="press Ctrl-C again (a second SIGINT) to stop at once",
            )
            self.stop.set()
        elif signum == signal.SIGINT:
            log_event(
                "devhost.forced_stop",
                level=logging.WARNING,
                signal=name,
                effect="invocations in flight are cut; their messages are redelivered when their locks expire",
            )
            logging.shutdown()
            # Immediate means not waiting for anything, a sync function's thread included. Nothing is lost: writes
            # commit or roll back in SQLite's journal, the kernel drops this process's locks, and the data
            # directory's Redis is stopped by its supervisor once no process uses it.
            os._exit(_FORCED_EXIT_STATUS)
        else:
            log_event("devhost.already_stopping", signal=name, force="a second SIGINT stops at once")


class _Host:
    def __init__(
        self,
        options: HostOptions,
        config: HostConfig,
        functions: list[HostedFunction],
        grace: float,
        claim: ServeLock,
        *,
        on_started: Callable[[str, Runtime], Awaitable[None]] | None = None,
    ) -> None:
        self._options = options
        self._on_started = on_started
        self._config = config
        self._functions = functions
        self._grace = grace
        self._claim = claim

    async def run(self, stop: asyncio.Event) -> None:
        timeout = self._config.function_timeout
        # The port first: a busy one is refused before the runtime starts anything (the database, Redis).
        server = HttpServer(HttpApp(self._functions, timeout), host=self._options.host, port=self._options.port)
        try:
            runtime = await get_runtime()
        except BaseException:
            server.close()
            raise
        # Everything that can refuse its configuration is built before anything starts.
        loops: list[tuple[str, TimerRunner | QueuePump]] = []
        for function in self._functions:
            if isinstance(function.binding, TimerBinding):
                runner = TimerRunner(function, timeout=timeout, fire_at_start=self._options.run_timers_now)
                loops.append((function.name, runner))
            elif isinstance(function.binding, QueueBinding):
                pump = QueuePump(
                    function,
                    runtime.queue,
                    max_concurrent_calls=self._config.max_concurrent_calls,
                    max_delivery_count=runtime.settings.max_delivery_count,
                    timeout=timeout,
                )
                loops.append((function.name, pump))
        workers = [await server.start()]
        self._claim.announce(server.url)
        if self._on_started is not None:
            await self._on_started(server.url, runtime)
        # Everything built so far lives as long as the host: keep it out of the collector's way, so full collections
        # stay short and do not show up as tail latency.
        gc.collect()
        gc.freeze()
        workers += [asyncio.create_task(loop.run(stop), name=name) for name, loop in loops]
        log_event(
            "devhost.started",
            url=server.url,
            data_dir=runtime.settings.data_dir.absolute(),
            functions=" ".join(function.describe() for function in self._functions),
            max_concurrent_calls=self._config.max_concurrent_calls,
            grace_seconds=f"{self._grace:g}",
        )
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *workers], return_when=asyncio.FIRST_COMPLETED)
        # A worker that ended on its own crashed: stop the rest the same way a signal would.
        stop.set()
        server.stop()
        done, pending = await asyncio.wait(workers, timeout=self._grace)
        if pending:
            log_event(
                "devhost.grace_over",
                level=logging.WARNING,
                grace_seconds=f"{self._grace:g}",
                cutting=" ".join(sorted(task.get_name() for task in pending)),
            )
            server.cut()
            for task in pending:
                if task is not workers[0]:  # the HTTP server winds down by itself once cut
                    task.cancel()
            finished, pending = await asyncio.wait(pending, timeout=_CANCEL_WAIT_SECONDS)
            done |= finished
            for task in pending:
                log_event("devhost.drain_timeout", level=logging.ERROR, worker=task.get_name())
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"dev host worker {task.get_name()} crashed") from task.exception()
        log_event("devhost.stopped")
