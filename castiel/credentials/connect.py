"""The pieces of the OAuth authorization-code flow a CLI runs for a person (RFC 6749 §4.1, PKCE RFC 7636, native
apps RFC 8252): a PKCE pair, an unguessable ``state``, the provider's authorize URL, a one-shot loopback listener on
``http://127.0.0.1:<port>/callback`` for the redirect, and a browser opened only when there is a graphical one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import webbrowser
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qsl, urlencode, urlsplit

from castiel.credentials.dialects import Dialect
from castiel.errors import ConfigError, PermanentError, RetryableError

CALLBACK_PATH = "/callback"
_MAX_REQUEST_BYTES = 16 * 1024
_PAGE = (
    "<!doctype html><meta charset=utf-8><title>Castiel</title>"
    "<p style='font-family:sans-serif'>{message} You can close this window.</p>"
)


@dataclass(frozen=True, slots=True)
class Pkce:
    """A PKCE verifier and its S256 challenge."""

    verifier: str
    challenge: str

    def __repr__(self) -> str:
        return "Pkce(verifier='***')"


def new_pkce() -> Pkce:
    """A fresh verifier (86 URL-safe characters, inside RFC 7636's 43-128) and its challenge."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    return Pkce(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def new_state() -> str:
    """An unguessable ``state`` binding the callback to this run (CSRF protection)."""
    return secrets.token_urlsafe(32)


def authorize_url(
    dialect: Dialect,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    pkce: Pkce,
    scope: str | None,
    override: str | None = None,
) -> str:
    """The URL that asks the person to authorise, with the provider's own extra parameters."""
    base = override or dialect.authorize_url
    if not base:
        raise ConfigError(f"{dialect.provider.value} has no default authorize URL: pass --authorize-url")
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        **({"scope": scope} if scope else {}),
        **dialect.authorize_params,
    }
    return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}"


def check_callback(params: Mapping[str, str], state: str) -> str:
    """The authorization code from the callback's parameters, once ``state`` matches; else why not."""
    if not hmac.compare_digest(params.get("state", ""), state):
        raise PermanentError("the callback's state does not match this authorisation: start `connect` again")
    if "error" in params:
        description = params.get("error_description", "")
        raise PermanentError(f"the provider refused: {params['error']}{f' ({description})' if description else ''}")
    code = params.get("code")
    if not code:
        raise PermanentError("the callback carried no authorization code")
    return code


class LoopbackCallback:
    """A one-shot HTTP listener on 127.0.0.1 for the provider's redirect (``async with``; port 0: any free one)."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._received: asyncio.Future[dict[str, str]] | None = None

    async def __aenter__(self) -> LoopbackCallback:
        self._received = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on 127.0.0.1:{self._port} for the OAuth callback: {exc}") from None
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def redirect_uri(self) -> str:
        """``http://127.0.0.1:<port>/callback``: register this (or its port-less form) with the provider."""
        return f"http://127.0.0.1:{self._port}{CALLBACK_PATH}"

    async def wait(self, timeout_seconds: float) -> dict[str, str]:
        """The query parameters of the first request to ``/callback``."""
        assert self._received is not None, "use LoopbackCallback in `async with`"
        try:
            return await asyncio.wait_for(asyncio.shield(self._received), timeout_seconds)
        except TimeoutError:
            raise RetryableError(f"no OAuth callback within {timeout_seconds:.0f} s: run `connect` again") from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        request_line = head[:_MAX_REQUEST_BYTES].split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        target = urlsplit(parts[1]) if len(parts) == 3 else None
        if target is None or parts[0] != "GET" or target.path != CALLBACK_PATH:
            await _answer(writer, 404, "Not the OAuth callback.")
            return
        params = dict(parse_qsl(target.query))
        ok = "code" in params and "error" not in params
        await _answer(writer, 200, "Authorisation received." if ok else "Authorisation failed, see the terminal.")
        if self._received is not None and not self._received.done():
            self._received.set_result(params)


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = _PAGE.format(message=message).encode()
    reason = "OK" if status == 200 else "Not Found"
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    try:
        await writer.drain()
    finally:
        writer.close()


def open_browser(url: str) -> bool:
    """Open ``url`` in a graphical browser if the system has one; True when one was asked to.

    A console browser (lynx, w3m …) would take over the terminal the flow is printing to, so it is never used; with
    no browser at all the person opens the printed URL themselves — never an error.
    """
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    if type(browser) is webbrowser.GenericBrowser:
        return False
    try:
        return bool(browser.open(url, new=2))
    except Exception:  # a browser that fails to start leaves the printed URL, which is enough
        return False
