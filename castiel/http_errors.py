"""httpx failures as ``castiel.errors``: the one table (``castiel.error_table``) for every caller of HTTP — the
adapters' engine, the OAuth token endpoint, and the CLI commands that call a server — applied at the call with
``HTTPX_ERRORS.translating(action)``.

A request that never got an answer (refused, reset, timed out) is retryable; one whose URL can never work (not http
or https, not a URL at all) or that redirects without end is permanent. Responses are not errors here: what a status
means is the caller's to decide (the adapters' resolution table, a token endpoint's dialect).

A request httpx refuses to write (``LocalProtocolError``: h11 found an illegal header) is permanent too — the same
request fails the same way — and its message is never repeated: h11 quotes the offending header value, which is
usually a credential (``Illegal header value b'Bearer …\\r'``). The error names the header instead.
"""

from __future__ import annotations

import re

import httpx

from castiel.error_table import ErrorTable, Rule
from castiel.errors import CastielError, ConfigError, PermanentError, RetryableError

_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class _HttpxErrorTable(ErrorTable):
    """``ErrorTable``, except that a request httpx would not write is described by its header names only."""

    def translate(self, exc: BaseException, action: str) -> CastielError | None:
        """The table's error; for ``LocalProtocolError`` a ``PermanentError`` that never quotes h11's message."""
        if isinstance(exc, httpx.LocalProtocolError):
            return PermanentError(f"{action}: {self.service} request not sent: {_unsendable(exc)}")
        return super().translate(exc, action)


def _unsendable(exc: httpx.LocalProtocolError) -> str:
    """Which header made the request unsendable, by name (a name with illegal characters as its repr: a name is
    configuration, never a secret); the value is not shown."""
    try:
        headers = exc.request.headers.raw
    except RuntimeError:  # raised outside a client, without the request
        headers = []
    bad_names = [name for name, _ in headers if not _HEADER_NAME.fullmatch(name)]
    if bad_names:
        return f"header name {bad_names[0].decode('latin-1')!r} is not a valid HTTP header name"
    bad_values = [name.decode("ascii") for name, value in headers if _CONTROL.search(value)]
    if bad_values:
        return f"the value of header {bad_values[0]} holds a control character (a CR or newline?); not shown"
    return "an invalid header or message framing (details not shown: they may hold a credential)"


HTTPX_ERRORS = _HttpxErrorTable(
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
