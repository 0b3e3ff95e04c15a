"""httpx failures as the taxonomy, one table for every caller of HTTP: what never got an answer is retryable, a URL
that can never work or a redirect loop is permanent, and the message names the action and the library's reason."""

from __future__ import annotations

import httpx
import pytest

from castiel.errors import CastielError, ConfigError, PermanentError, RetryableError
from castiel.http_errors import HTTPX_ERRORS, httpx_error


@pytest.mark.parametrize(
    ("exc", "error", "reason"),
    [
        (httpx.ConnectError("refused"), RetryableError, "network error: refused"),
        (httpx.ReadTimeout("slow"), RetryableError, "request timed out: slow"),
        (httpx.PoolTimeout(""), RetryableError, "request timed out: PoolTimeout"),
        (httpx.RemoteProtocolError("eof"), RetryableError, "network error: eof"),
        (httpx.DecodingError("bad gzip"), RetryableError, "request failed: bad gzip"),
        (httpx.UnsupportedProtocol("ftp"), PermanentError, "request to a URL that is not http or https: ftp"),
        (httpx.TooManyRedirects("loop"), PermanentError, "too many redirects: loop"),
    ],
)
def test_each_httpx_error_has_its_place_in_the_taxonomy(
    exc: httpx.HTTPError, error: type[CastielError], reason: str
) -> None:
    translated = httpx_error(exc, "GET /things")
    assert type(translated) is error
    assert str(translated) == f"GET /things: HTTP {reason}"


def test_an_invalid_url_is_a_configuration_error_raised_from_it() -> None:
    expected = "building the request: HTTP request to an invalid URL"
    with pytest.raises(ConfigError, match=expected) as raised, HTTPX_ERRORS.translating("building the request"):
        httpx.Request("GET", "http://[::1")
    assert isinstance(raised.value.__cause__, httpx.InvalidURL)


def test_an_error_of_another_kind_passes_through() -> None:
    assert HTTPX_ERRORS.translate(ValueError("bug"), "GET /things") is None
    with pytest.raises(ValueError, match="bug"), HTTPX_ERRORS.translating("GET /things"):
        raise ValueError("bug")
