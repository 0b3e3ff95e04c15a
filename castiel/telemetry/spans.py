"""One span per function invocation, the custom dimensions it carries, and the trace context queue messages carry.

A function's edge (``castiel/triggers.py``) opens ``invocation(...)``: a span named after the function, under the
work's correlation id, with the dimensions App Insights shows as ``customDimensions`` (function, execution id, and —
as a service learns them — tenant, connection, provider, task; ``annotate``). Metrics recorded inside take the same
dimensions (``metrics.py``), except the per-execution ones.

A queue hop keeps the trace: every message sent while a span is current carries its W3C ``traceparent`` in its
application properties (``TracedQueue``), and the function that receives it continues that trace, so a webhook's
span is the parent of the push it caused. Under the Functions host the worker has usually made the host's span
current already (``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY``); that one is continued instead. The correlation id
rides along in the message body and the message's ``correlation_id``, whatever tracing is configured.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from castiel.telemetry import correlation, current_correlation_id

TRACEPARENT = "traceparent"
"""The application property (and HTTP header) that carries the W3C trace context across a hop."""

CORRELATION_ID = "correlation_id"
"""The span attribute holding the work's correlation id (searchable in App Insights ``customDimensions``)."""


class Dimension(StrEnum):
    """The custom dimensions of an invocation's span (and, but for the per-execution ones, of its metrics)."""

    FUNCTION = "function"
    EXECUTION_ID = "execution_id"
    TENANT = "tenant"
    CONNECTION = "connection"
    PROVIDER = "provider"
    TASK = "task"


PER_EXECUTION = frozenset({Dimension.EXECUTION_ID, Dimension.TASK})
"""Dimensions with a value per execution: on spans only, never on metrics (each value would be its own series)."""

_propagator = TraceContextTextMapPropagator()
_dimensions: ContextVar[dict[str, str] | None] = ContextVar("castiel_dimensions", default=None)
_tracer = trace.get_tracer("castiel")


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Send spans to ``provider`` (tests pass one with an in-memory exporter); None: the global provider."""
    global _tracer
    _tracer = trace.get_tracer("castiel") if provider is None else provider.get_tracer("castiel")


@contextmanager
def invocation(
    function: str,
    *,
    kind: SpanKind,
    execution_id: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
) -> Iterator[Span]:
    """Run one invocation of ``function`` in its span, under ``correlation_id`` (else the one in hand, else new).

    The span continues the current one (the host's) when there is one, else the trace of ``traceparent`` (what the
    message or request carried), else it starts a trace. An exception leaving the block is recorded on the span.
    """
    parent = None
    if traceparent and not trace.get_current_span().get_span_context().is_valid:
        parent = _propagator.extract({TRACEPARENT: traceparent})
    dimensions = {Dimension.FUNCTION.value: function}
    if execution_id:
        dimensions[Dimension.EXECUTION_ID.value] = execution_id
    with correlation(correlation_id or current_correlation_id()) as value:
        token = _dimensions.set(dimensions)
        try:
            attributes = {**dimensions, CORRELATION_ID: value}
            with _tracer.start_as_current_span(function, context=parent, kind=kind, attributes=attributes) as span:
                yield span
        finally:
            _dimensions.reset(token)


def annotate(
    *,
    tenant: str | None = None,
    connection: str | None = None,
    provider: str | None = None,
    task: str | None = None,
) -> None:
    """Add what a service learned about the work in hand to the invocation's span and dimensions (None: unknown)."""
    values = {
        Dimension.TENANT.value: tenant,
        Dimension.CONNECTION.value: connection,
        Dimension.PROVIDER.value: provider,
        Dimension.TASK.value: task,
    }
    dimensions = _dimensions.get()
    span = trace.get_current_span()
    for name, value in values.items():
        if value is None:
            continue
        if dimensions is not None:
            dimensions[name] = value
        span.set_attribute(name, value)


def current_dimensions() -> Mapping[str, str]:
    """The dimensions of the invocation in hand (empty outside one)."""
    return _dimensions.get() or {}


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span, or None when no span is being recorded."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)
