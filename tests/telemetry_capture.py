"""In-memory OpenTelemetry exporters wired into ``castiel.telemetry`` for one test, and the app's functions listed
(shared by the telemetry tests)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import pytest
from azure.functions.decorators.function_app import FunctionBuilder
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from castiel.telemetry.metrics import use_meter_provider
from castiel.telemetry.spans import use_tracer_provider


def listed_functions(app: func.FunctionApp) -> dict[str, FunctionBuilder]:
    """``app``'s functions by name. The library lists an app once per process, and remembers that it did; this
    forgets it again, so other test modules can list the app too."""
    app.functions_bindings = None
    try:
        return {str(function.get_function_name()): function for function in app.get_functions()}
    finally:
        app.functions_bindings = None


@dataclass(frozen=True, slots=True)
class Point:
    """One metric stream: its attributes and its value (a counter's sum, a histogram's count and sum)."""

    attributes: dict[str, Any]
    value: float
    count: int = 0


@dataclass
class Captured:
    """What the code emitted while the fixture was active."""

    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        finished = list(self.spans_exporter.get_finished_spans())
        return [span for span in finished if name is None or span.name == name]

    def metrics(self) -> dict[str, list[Point]]:
        """Every metric recorded so far, by name (cumulative, so a second read includes the first)."""
        found: dict[str, list[Point]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        found.setdefault(metric.name, []).append(_point(point))
        return found

    def points(self, name: str) -> list[Point]:
        return self.metrics().get(name, [])


def _point(point: Any) -> Point:
    if isinstance(point, HistogramDataPoint):
        return Point(dict(point.attributes or {}), point.sum, point.count)
    assert isinstance(point, NumberDataPoint)
    return Point(dict(point.attributes or {}), point.value)


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Spans and metrics of the test, read back in memory; the global no-op providers again afterwards."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    use_tracer_provider(tracer_provider)
    use_meter_provider(meter_provider)
    try:
        yield Captured(exporter, reader)
    finally:
        use_tracer_provider(None)
        use_meter_provider(None)
        meter_provider.shutdown()
        tracer_provider.shutdown()
