"""One function invocation: its ids, its correlation scope, its ``context``, the ``functionTimeout`` bound, and its
one log line."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Literal

from castiel.devhost.convert import InvocationContext
from castiel.devhost.loader import CONTEXT, HostedFunction
from castiel.errors import CastielError
from castiel.settlement import typed_message
from castiel.telemetry import correlation, log_event, new_correlation_id, new_id

Outcome = Literal["succeeded", "failed", "dead_lettered", "abandoned", "cancelled"]

logger = logging.getLogger("castiel.devhost")

# A caller's correlation id (an HTTP header, a message property) rides on every log line of the invocation, so one
# that could break or flood a line is replaced by a fresh id.
_MAX_CORRELATION_ID = 128


class FunctionTimeout(Exception):
    """An invocation ran past ``functionTimeout`` (the Functions host fails it the same way)."""


class Invocation:
    """Runs a function once and logs the outcome; create one per trigger event."""

    __slots__ = ("_started", "_timeout", "_traceparent", "correlation_id", "function", "invocation_id")

    def __init__(
        self,
        function: HostedFunction,
        correlation_id: str | None,
        timeout: float | None,
        traceparent: str | None = None,
    ) -> None:
        self.function = function
        self.invocation_id = new_id()
        self.correlation_id = correlation_id if _fit_for_logs(correlation_id) else new_correlation_id()
        self._timeout = timeout
        self._traceparent = traceparent
        self._started = time.perf_counter()

    async def call(self, argument: Any, **provided: Any) -> Any:
        """The user function's result; every log line inside carries the correlation id. ``provided`` holds what
        the caller makes for the function's extra parameters, by role (``settlement``: the message actions).

        Raises ``FunctionTimeout`` past the timeout. A sync function's thread cannot be stopped and finishes on its
        own; its result is then ignored, as the Functions host ignores a timed-out worker's. Cancelled (the host cut
        it at shutdown), it logs its line with outcome ``cancelled`` and lets the cancellation go on.
        """
        scope = asyncio.timeout(self._timeout)
        try:
            with correlation(self.correlation_id):
                async with scope:
                    return await self.function.call(argument, **self._extras(provided))
        except asyncio.CancelledError:
            self.finish("cancelled")
            raise
        except TimeoutError as exc:
            if scope.expired():
                raise FunctionTimeout(f"{self.function.name} exceeded functionTimeout of {self._timeout:g}s") from exc
            raise

    def _extras(self, provided: dict[str, Any]) -> dict[str, Any]:
        """The extra arguments the function declares (``HostedFunction.extras``), by parameter name."""
        made = dict(provided)
        if CONTEXT in self.function.extras:
            directory = str(Path.cwd())
            made[CONTEXT] = InvocationContext(self.invocation_id, self.function.name, directory, self._traceparent)
        return {parameter: made[role] for role, parameter in self.function.extras.items() if role in made}

    def finish(self, outcome: Outcome, error: BaseException | None = None) -> None:
        """Log the invocation line, and the traceback when ``error`` is a bug (not a ``CastielError``)."""
        fields: dict[str, object] = {}
        if error is not None:
            fields["error"] = typed_message(error)[:300]
        log_event(
            "invocation",
            level=logging.INFO if outcome == "succeeded" else logging.WARNING,
            function=self.function.name,
            invocation_id=self.invocation_id,
            correlation_id=self.correlation_id,
            duration_ms=round((time.perf_counter() - self._started) * 1000, 2),
            outcome=outcome,
            **fields,
        )
        if error is not None and not isinstance(error, CastielError):
            logger.error("unhandled exception in %s (%s)", self.function.name, self.invocation_id, exc_info=error)


def _fit_for_logs(correlation_id: str | None) -> bool:
    if not correlation_id:
        return False
    return len(correlation_id) <= _MAX_CORRELATION_ID and correlation_id.isprintable() and " " not in correlation_id
