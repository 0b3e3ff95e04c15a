"""The metrics operators chart and alert on: OpenTelemetry instruments (App Insights ``customMetrics``).

Each metric is recorded where its event happens, in one call, with the dimensions of the invocation in hand
(``spans.current_dimensions``: function, tenant, connection, provider) plus its own (outcome, reason, queue …).
Unconfigured (``APPLICATIONINSIGHTS_CONNECTION_STRING`` unset, no provider installed) the instruments are
OpenTelemetry's no-ops; every sample is also a DEBUG log line, for a terminal.

``infra/queries/*.kql`` read these names and dimensions; a test checks they use no other.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider

from castiel.telemetry import log_event, logger
from castiel.telemetry.spans import PER_EXECUTION, current_dimensions


class Metric(StrEnum):
    """Every metric name, as App Insights shows it (``customMetrics | where name == ...``)."""

    TASKS_SCHEDULED = "tasks_scheduled"
    INBOUND_SUCCESS = "inbound_success"
    INBOUND_FAILED = "inbound_failed"
    OUTBOUND_SUCCESS = "outbound_success"
    OUTBOUND_FAILED = "outbound_failed"
    REFRESHER_SUCCESS = "refresher_success"
    REFRESHER_FAILED = "refresher_failed"
    WEBHOOK_SUCCESS = "webhook_success"
    WEBHOOK_REJECTED = "webhook_rejected"
    WEBHOOK_LATENCY_MS = "webhook_latency_ms"
    SYNC_RECORDS = "sync_records"
    SYNC_DURATION_MS = "sync_duration_ms"
    RATELIMIT_QUEUED = "ratelimit_queued"
    RATELIMIT_REJECTED = "ratelimit_rejected"
    DEAD_LETTERED = "dead_lettered"


class Attribute(StrEnum):
    """The dimensions metrics add of their own, beside the invocation's (``spans.Dimension``)."""

    OUTCOME = "outcome"
    REASON = "reason"
    DIRECTION = "direction"
    QUEUE = "queue"
    OPERATION = "operation"
    LEVEL = "limit_level"  # not "level": log_event takes that keyword as the severity
    STATUS = "status"


_DESCRIPTIONS = {
    Metric.TASKS_SCHEDULED: "sync tasks the scheduler queued on sync-inbound",
    Metric.INBOUND_SUCCESS: "pull executions that succeeded",
    Metric.INBOUND_FAILED: "pull executions that ended failed or needs_reauth",
    Metric.OUTBOUND_SUCCESS: "outbound changes merged and pushed (or with nothing to do)",
    Metric.OUTBOUND_FAILED: "outbound changes a target refused for good",
    Metric.REFRESHER_SUCCESS: "credentials the token refresher refreshed (or found fresh)",
    Metric.REFRESHER_FAILED: "credential refreshes that failed or found the grant dead (needs_reauth)",
    Metric.WEBHOOK_SUCCESS: "webhook deliveries answered below 400",
    Metric.WEBHOOK_REJECTED: "webhook deliveries answered 400 or above",
    Metric.WEBHOOK_LATENCY_MS: "time from a webhook's arrival to its answer",
    Metric.SYNC_RECORDS: "records a sync handled, by outcome (created, updated, pushed …)",
    Metric.SYNC_DURATION_MS: "time one sync execution took",
    Metric.RATELIMIT_QUEUED: "calls over a rate limit, queued for later",
    Metric.RATELIMIT_REJECTED: "deletes over a rate limit, refused (the caller retries)",
    Metric.DEAD_LETTERED: "queue messages dead-lettered, by reason",
}
HISTOGRAMS = frozenset({Metric.WEBHOOK_LATENCY_MS, Metric.SYNC_DURATION_MS})
"""Metrics that record a distribution (milliseconds); the others are counters."""


def _instruments(meter: Meter) -> dict[Metric, Counter | Histogram]:
    made: dict[Metric, Counter | Histogram] = {}
    for metric in Metric:
        description = _DESCRIPTIONS[metric]
        if metric in HISTOGRAMS:
            made[metric] = meter.create_histogram(metric.value, unit="ms", description=description)
        else:
            made[metric] = meter.create_counter(metric.value, description=description)
    return made


_made = _instruments(metrics.get_meter("castiel"))


def use_meter_provider(provider: MeterProvider | None) -> None:
    """Record to ``provider`` (tests pass one with an in-memory reader); None: the global provider."""
    global _made
    _made = _instruments(metrics.get_meter("castiel") if provider is None else provider.get_meter("castiel"))


def record(metric: Metric, value: float = 1, /, **attributes: str | None) -> None:
    """Add ``value`` to a counter, or record it in a histogram, with the invocation's dimensions and ``attributes``
    (None values left out)."""
    merged = {name: value for name, value in current_dimensions().items() if name not in PER_EXECUTION}
    merged.update((name, value) for name, value in attributes.items() if value is not None)
    instrument = _made[metric]
    if isinstance(instrument, Counter):
        instrument.add(value, merged)
    else:
        instrument.record(value, merged)
    if logger.isEnabledFor(logging.DEBUG):
        log_event("metric", level=logging.DEBUG, metric=metric.value, value=value, **merged)
