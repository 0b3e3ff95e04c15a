"""httpx failures as ``castiel.errors``: the one table (``castiel.error_table``) for every caller of HTTP — the
adapters' engine, the OAuth token endpoint, and the CLI commands that call a server — applied at the call with
``HTTPX_ERRORS.translating(action)``.

A request that never got an answer (refused, reset, timed out) is retryable; one whose URL can never work (not http
or https, not a URL at all) or that redirects without end is permanent. Responses are not errors here: what a status
means is the caller's to decide (the adapters' resolution table, a token endpoint's dialect).
"""

from __future__ import annotations

import httpx

from castiel.error_table import ErrorTable, Rule
from castiel.errors import CastielError, ConfigError, PermanentError, RetryableError

HTTPX_ERRORS = ErrorTable(
    "HTTP",
    [
        Rule((httpx.HTTPError,), RetryableError, "request failed"),
        Rule((httpx.TransportError,), RetryableError, "network error"),
        Rule((httpx.TimeoutException,), RetryableError, "request timed out"),
        # UnsupportedProtocol is a TransportError, but a URL that is not http(s) never starts working.
        Rule((httpx.UnsupportedProtocol,), PermanentError, "request to a URL that is not http or https"),
        Rule((httpx.InvalidURL,), ConfigError, "request to an invalid URL"),
        Rule((httpx.TooManyRedirects,), PermanentError, "too many redirects"),
    ],
)
"""What httpx raises (the closest class's row wins, whatever the order); the first row names every ``HTTPError``."""


def httpx_error(exc: httpx.HTTPError, action: str) -> CastielError:
    """The Castiel error for an httpx failure of ``action``: ``HTTPX_ERRORS`` has a row for every one of them."""
    error = HTTPX_ERRORS.translate(exc, action)
    assert error is not None, "HTTPX_ERRORS names httpx.HTTPError"
    return error
