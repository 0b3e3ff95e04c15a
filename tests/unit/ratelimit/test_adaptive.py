"""Provider headers → a connection's throttle: known-answer vectors for every format, then the rules."""

from __future__ import annotations

import pytest

from castiel.ratelimit.adaptive import (
    AdaptiveConfig,
    Throttle,
    Usage,
    parse_rate_limit_headers,
    parse_retry_after,
    parse_sforce_limit_info,
    throttle_for,
)

S = 1_000_000
NOW = 1_700_000_000 * S  # 2023-11-14T22:13:20Z
Q = 60 * S  # the default quiet window


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", NOW + 30 * S),
        (" 2.5 ", NOW + 2_500_000),
        ("0", NOW),
        ("Tue, 14 Nov 2023 22:14:00 GMT", NOW + 40 * S),
        ("Tue, 14 Nov 2023 22:00:00 GMT", NOW),  # already past: now
        ("-5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str, expected: int | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999", "x-ratelimit-reset": "1700003600"},
            Usage(4999, 5000, 1_700_003_600 * S),
        ),
        (
            {"x-ratelimit-limit": "30", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "45"},
            Usage(0, 30, NOW + 45 * S),
        ),
        ({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "12"}, Usage(12, 60, None)),
        ({"x-ratelimit-limit": "60"}, None),
        ({"x-ratelimit-limit": "sixty", "x-ratelimit-remaining": "1"}, None),
    ],
)
def test_github_rate_limit_headers(headers: dict[str, str], expected: Usage | None) -> None:
    assert parse_rate_limit_headers(headers, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("api-usage=18/5000", Usage(4982, 5000)),
        ("api-usage=10018/100000; api-bursts=1/750", Usage(89982, 100000)),
        ("per-app-api-usage=17/250(appName=sample-connected-app); api-usage=25/5000", Usage(4975, 5000)),
        ("per-app-api-usage=17/250(appName=sample-connected-app)", None),
        ("api-usage=15001/15000", Usage(-1, 15000)),
    ],
)
def test_salesforce_limit_info(value: str, expected: Usage | None) -> None:
    assert parse_sforce_limit_info(value) == expected


def github(remaining: int, limit: int = 5000, reset: int = 1_700_003_600) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(reset)}


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        # plenty left, or nothing said: no change, and no Redis write
        (200, github(4000), None),
        (200, {}, None),
        (200, {"Sforce-Limit-Info": "api-usage=100/15000"}, None),
        (500, {"Retry-After": "30"}, None),
        # below 20 %: half for a quiet window; below 5 %: a quarter, then half, then whole
        (200, github(999), Throttle(0, 0, NOW + Q)),
        (200, github(249), Throttle(0, NOW + Q, NOW + 2 * Q)),
        (200, {"Sforce-Limit-Info": "api-usage=12500/15000"}, Throttle(0, 0, NOW + Q)),
        (200, {"sforce-limit-info": "api-usage=14500/15000"}, Throttle(0, NOW + Q, NOW + 2 * Q)),
        # Retry-After on 429, 503 and GitHub's 403 secondary limit pauses, then resumes at a quarter
        (429, {"Retry-After": "30"}, Throttle(NOW + 30 * S, NOW + 30 * S + Q, NOW + 30 * S + 2 * Q)),
        (
            503,
            {"retry-after": "Tue, 14 Nov 2023 22:14:00 GMT"},
            Throttle(NOW + 40 * S, NOW + 40 * S + Q, NOW + 40 * S + 2 * Q),
        ),
        (403, {"Retry-After": "60", **github(4000)}, Throttle(NOW + 60 * S, NOW + 60 * S + Q, NOW + 60 * S + 2 * Q)),
        # a 429 that says nothing: the default pause
        (429, {}, Throttle(NOW + 60 * S, NOW + 60 * S + Q, NOW + 60 * S + 2 * Q)),
        # a quota used up: until its reset (GitHub), or the quota pause (Salesforce names no reset)
        (403, github(0, reset=1_700_000_900), Throttle(NOW + 900 * S, NOW + 900 * S + Q, NOW + 900 * S + 2 * Q)),
        (
            200,
            {"Sforce-Limit-Info": "api-usage=15000/15000"},
            Throttle(NOW + 3600 * S, NOW + 3600 * S + Q, NOW + 3600 * S + 2 * Q),
        ),
    ],
)
def test_throttle_for_a_response(status: int, headers: dict[str, str], expected: Throttle | None) -> None:
    assert throttle_for(status, headers, NOW) == expected


def test_the_reason_names_what_the_provider_said() -> None:
    throttle = throttle_for(429, {"Retry-After": "30"}, NOW)
    assert throttle is not None
    assert throttle.reason == "HTTP 429 Retry-After 30"
    quota = throttle_for(200, {"Sforce-Limit-Info": "api-usage=15000/15000"}, NOW)
    assert quota is not None
    assert "quota of 15000 used up" in quota.reason


def test_thresholds_and_durations_are_configurable() -> None:
    config = AdaptiveConfig(quiet_seconds=10, default_pause_seconds=5, halve_below=0.5, quarter_below=0.1)
    assert throttle_for(200, github(2000), NOW, config) == Throttle(0, 0, NOW + 10 * S)
    assert throttle_for(429, {}, NOW, config) == Throttle(NOW + 5 * S, NOW + 15 * S, NOW + 25 * S)


@pytest.mark.parametrize(
    ("at", "divisor"),
    [(NOW, 4), (NOW + Q - 1, 4), (NOW + Q, 2), (NOW + 2 * Q - 1, 2), (NOW + 2 * Q, 1)],
)
def test_the_limit_recovers_step_by_step_after_quiet_windows(at: int, divisor: int) -> None:
    throttle = Throttle(0, NOW + Q, NOW + 2 * Q)
    assert throttle.divisor(at) == divisor


def test_merging_keeps_the_later_of_each_deadline() -> None:
    merged = Throttle(10, 50, 60).merged(Throttle(20, 30, 90))
    assert (merged.paused_until, merged.quarter_until, merged.half_until) == (20, 50, 90)
    assert merged.ends_at == 90
