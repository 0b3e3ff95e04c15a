"""httpx failures as the taxonomy, one table for every caller of HTTP: what never got an answer is retryable, a URL
that can never work or a redirect loop is permanent, and the message names the action and the library's reason."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from castiel.errors import CastielError, ConfigError, PermanentError, RetryableError
from castiel.http_errors import HTTPX_ERRORS, httpx_error

SECRET = "zq-HEADER-SECRET-41"


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


@pytest.fixture
def listening() -> Iterator[str]:
    """A loopback socket that accepts connections (the kernel's backlog) and never answers: h11 checks a request's
    headers as it writes them, after connecting, so a refused header needs somewhere to connect to."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"Authorization": f"Bearer {SECRET}\r"}, "the value of header Authorization holds a control character"),
        ({"X-Api-Key": f"{SECRET}\n"}, "the value of header X-Api-Key holds a control character"),
        ({"X Api Key": SECRET}, "header name 'X Api Key' is not a valid HTTP header name"),
    ],
)
async def test_a_header_h11_refuses_is_permanent_named_and_its_value_never_shown(
    listening: str, headers: dict[str, str], named: str
) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(PermanentError) as raised, HTTPX_ERRORS.translating("GET /things"):
            await http.get(listening + "/things", headers=headers)
    assert isinstance(raised.value.__cause__, httpx.LocalProtocolError)
    assert str(raised.value).startswith(f"GET /things: HTTP request not sent: {named}")
    assert SECRET not in str(raised.value)


def test_a_local_protocol_error_without_its_request_is_permanent_and_not_quoted() -> None:
    translated = httpx_error(httpx.LocalProtocolError(f"Illegal header value b'{SECRET}\\r'"), "GET /things")
    assert type(translated) is PermanentError
    assert SECRET not in str(translated)
    assert "details not shown" in str(translated)
