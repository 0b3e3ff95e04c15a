"""Usage alerts fire once per window per threshold; the default callback logs a structured warning."""

from __future__ import annotations

import logging

import pytest

from castiel.ratelimit.alerts import AlertKind, RateLimitAlert, Subject, UsageAlarm, log_alert

S = 1_000_000
SUBJECT = Subject("t1", "c1", "github")


@pytest.mark.parametrize(
    ("used", "kinds"),
    [
        (7, []),
        (8, [AlertKind.USAGE_80]),
        (9, [AlertKind.USAGE_80]),
        (10, [AlertKind.USAGE_80, AlertKind.USAGE_100]),
        (12, [AlertKind.USAGE_80, AlertKind.USAGE_100]),
    ],
)
def test_thresholds_of_a_limit_of_ten(used: int, kinds: list[AlertKind]) -> None:
    fired: list[RateLimitAlert] = []
    UsageAlarm(fired.append).update(
        key="k", used=used, limit=10, window_us=60 * S, now_us=0, subject=SUBJECT, level="tenant"
    )
    assert [alert.kind for alert in fired] == kinds
    assert all(alert.level == "tenant" and alert.subject == SUBJECT for alert in fired)


def test_each_threshold_fires_once_per_window_per_key() -> None:
    fired: list[RateLimitAlert] = []
    alarm = UsageAlarm(fired.append)

    def at(now_us: int, key: str = "k") -> list[AlertKind]:
        fired.clear()
        alarm.update(key=key, used=10, limit=10, window_us=60 * S, now_us=now_us, subject=SUBJECT, level="operation")
        return [alert.kind for alert in fired]

    assert at(0) == [AlertKind.USAGE_80, AlertKind.USAGE_100]
    assert at(59 * S) == []
    assert at(59 * S, key="other") == [AlertKind.USAGE_80, AlertKind.USAGE_100]
    assert at(60 * S) == [AlertKind.USAGE_80, AlertKind.USAGE_100]


def test_the_default_callback_logs_a_structured_warning(caplog: pytest.LogCaptureFixture) -> None:
    alert = RateLimitAlert(AlertKind.CONNECTION_PAUSED, "paused until 12:00", 1_700_000_000.0, SUBJECT)
    with caplog.at_level(logging.INFO, logger="castiel"):
        log_alert(alert)
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        'ratelimit.alert detail="paused until 12:00" kind=connection_paused '
        "tenant_id=t1 connection_id=c1 provider=github"
    )


def test_a_usage_alert_logs_the_level_it_is_about(caplog: pytest.LogCaptureFixture) -> None:
    alert = RateLimitAlert(AlertKind.USAGE_80, "80% used", 1_700_000_000.0, SUBJECT, level="operation")
    with caplog.at_level(logging.INFO, logger="castiel"):
        log_alert(alert)
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert "kind=usage_80" in warning.getMessage()
    assert "limit_level=operation" in warning.getMessage()
