"""infra/queries/*.kql reference only metric names, span names and dimensions the code emits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import function_app
from castiel.models import RateLimitCheck, RefreshOutcome
from castiel.telemetry.metrics import Attribute, Metric
from castiel.telemetry.outcomes import credential_handled, rate_limited, sync_finished, webhook_answered
from castiel.telemetry.spans import CORRELATION_ID, Dimension
from tests.telemetry_capture import Captured, listed_functions
from tests.unit.telemetry.test_metrics import credential, result

QUERIES = sorted((Path(__file__).parents[3] / "infra" / "queries").glob("*.kql"))
METRICS = {metric.value for metric in Metric}
FUNCTIONS = set(listed_functions(function_app.app))
DIMENSIONS = {d.value for d in Dimension} | {a.value for a in Attribute} | {CORRELATION_ID}

_COMPARED = re.compile(r'\bname\s+(==|in|endswith)\s+(\([^)]*\)|"[^"]*")')
_DIMENSION = re.compile(r"customDimensions(?:\.(\w+)|\[\"(\w+)\"\])")


def compared_names(text: str) -> list[tuple[str, str]]:
    """Every (operator, literal) compared with a table's ``name`` column."""
    return [(op, literal) for op, values in _COMPARED.findall(text) for literal in re.findall(r'"([^"]*)"', values)]


def test_there_is_a_query_for_each_question_operators_ask() -> None:
    assert {query.stem for query in QUERIES} == {
        "function-health",
        "error-rate",
        "webhook-latency",
        "records-synced",
        "dead-letter-growth",
        "token-refresh-failures",
        "rate-limit-pauses",
    }


@pytest.mark.parametrize("query", QUERIES, ids=lambda path: path.stem)
def test_a_query_names_only_emitted_metrics_spans_and_dimensions(query: Path) -> None:
    text = query.read_text()
    compared = compared_names(text)
    assert compared, f"{query.name} names no metric"
    for op, literal in compared:
        if op == "endswith":
            assert any(metric.endswith(literal) for metric in METRICS), literal
        else:
            assert literal in METRICS | FUNCTIONS, f"{query.name}: {literal!r} is neither a metric nor a function"
    used = {a or b for a, b in _DIMENSION.findall(text)}
    assert used <= DIMENSIONS, f"{query.name}: {sorted(used - DIMENSIONS)} are not dimensions the code emits"


def test_the_outcomes_emit_only_declared_dimensions(captured: Captured) -> None:
    sync_finished("inbound", result("succeeded"))
    sync_finished("outbound", result("failed"))
    webhook_answered(provider="github", tenant="t1", outcome="accepted", status=202, latency_ms=3.0)
    credential_handled(credential(), list(RefreshOutcome))
    check = RateLimitCheck(
        allowed=False,
        queued=True,
        remaining=0,
        reset_at=result("x").started_at,
        retry_after_seconds=1.0,
        level="tenant",
    )
    rate_limited(check, tenant="t1", connection="c", provider="github", operation="fetch")
    emitted = {name for points in captured.metrics().values() for point in points for name in point.attributes}
    assert emitted <= DIMENSIONS
    assert set(captured.metrics()) <= METRICS
