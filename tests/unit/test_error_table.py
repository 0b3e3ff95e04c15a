"""The translation tables at the edge of each foreign library: the most specific rule wins whatever the order of the
rows, the service's retry-after is read in one place, and an error no row names passes through untouched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from castiel.error_table import ErrorTable, Rule, retry_after_seconds
from castiel.errors import ConfigError, NotFound, PermanentError, RateLimited, RetryableError
from castiel.redis_script import REDIS_ERRORS, redis_errors

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-ms-retry-after-ms": "1500"}, 1.5),
        ({"X-MS-Retry-After-Ms": "20"}, 0.02),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "Sun, 01 Mar 2026 12:00:30 GMT"}, 30.0),
        ({"Retry-After": "Sun, 01 Mar 2026 11:59:00 GMT"}, 0.0),
        ({"x-ms-retry-after-ms": "soon", "Retry-After": "3"}, 3.0),
        ({"Retry-After": "whenever"}, 9.0),
        ({}, 9.0),
        (None, 9.0),
    ],
)
def test_retry_after_is_read_from_whichever_header_the_service_sent(
    headers: dict[str, str] | None, seconds: float
) -> None:
    assert retry_after_seconds(headers, 9.0, now=NOW) == pytest.approx(seconds)


class Failure(Exception):
    def __init__(self, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"failed with {status}")
        self.status_code = status
        self.headers = headers or {}


class Gone(Failure):
    """A subclass, as SDKs raise for particular statuses."""


def held(exc: BaseException) -> bool:
    return getattr(exc, "headers", {}).get("x-code") == "held"


TABLE = ErrorTable(
    "Service",
    [  # deliberately from most to least specific, the reverse of how a first-match table would need them
        Rule((Failure,), PermanentError, "refused it ({status})", statuses=(409,), when=held),
        Rule((Failure,), RateLimited, "throttled", statuses=(429,)),
        Rule((Gone,), NotFound, "has no such thing"),
        Rule((Failure,), ConfigError, "forbade it", statuses=(403,)),
        Rule((Failure,), PermanentError, "answered {status}", statuses=range(400, 500)),
        Rule((Failure,), RetryableError, "failed"),
    ],
    level="service",
)


@pytest.mark.parametrize(
    ("error", "expected", "reason"),
    [
        (Failure(409, {"x-code": "held"}), PermanentError, "refused it (409)"),
        (Failure(409), PermanentError, "answered 409"),
        (Failure(403), ConfigError, "forbade it"),
        (Gone(404), NotFound, "has no such thing"),
        (Failure(404), PermanentError, "answered 404"),
        (Failure(None), RetryableError, "failed"),
    ],
)
def test_the_most_specific_rule_wins(error: Exception, expected: type[Exception], reason: str) -> None:
    translated = TABLE.translate(error, "read thing/1")

    assert type(translated) is expected
    assert str(translated).startswith(f"read thing/1: Service {reason}: ")


def test_a_rate_limit_carries_the_wait_and_level() -> None:
    translated = TABLE.translate(Failure(429, {"Retry-After": "12"}), "write thing/1")

    assert isinstance(translated, RateLimited)
    assert (translated.retry_after, translated.level) == (12.0, "service")


def test_errors_no_rule_names_and_castiel_errors_pass_through() -> None:
    with pytest.raises(KeyError), TABLE.translating("read"):
        raise KeyError("not the service's")
    with pytest.raises(NotFound, match="already ours"), TABLE.translating("read"):
        raise NotFound("already ours")
    with pytest.raises(RetryableError) as raised, TABLE.translating("read"):
        raise Failure(503)
    assert isinstance(raised.value.__cause__, Failure)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RedisConnectionError("Error 111 connecting"), "unreachable"),
        (ConnectionRefusedError(111, "refused"), "unreachable"),
        (RedisTimeoutError("Timeout reading"), "did not answer in time"),
        (TimeoutError(), "did not answer in time"),
        (AuthenticationError("invalid username-password pair"), "refused the credentials"),
        (NoPermissionError("NOPERM this user has no permissions"), "refused the credentials"),
        (ResponseError("CROSSSLOT Keys in request don't hash to the same slot"), "refused the command"),
    ],
)
def test_every_redis_failure_is_retryable_with_its_own_reason(error: Exception, reason: str) -> None:
    with pytest.raises(RetryableError) as raised, redis_errors("the rate limiter"):
        raise error

    assert str(raised.value).startswith(f"the rate limiter: Redis {reason}")
    assert REDIS_ERRORS.translate(ValueError("not redis"), "x") is None
