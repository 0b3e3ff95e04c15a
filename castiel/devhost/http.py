"""HTTP triggers served by uvicorn (uvloop, httptools), with the Functions host's routing and answers.

Routes come from the HTTP triggers (route prefix empty); a method the trigger does not allow is 405 with ``Allow``,
an unknown path 404, both with a JSON reason. An exception escaping a function is a bug: logged with its traceback,
answered 500. ``GET /admin/host/status`` answers ``{"state": "Running"}`` for readiness checks, as the Functions
host does.

A request body is read only up to ``max_body_bytes`` (the webhook receiver's 1 MiB, the one HTTP trigger's limit):
a declared ``Content-Length`` over it is answered 413 before any of the body is read, and a chunked body is answered
413 as soon as it passes it, the rest left unread (the connection is then closed). The peer address is the socket's:
uvicorn's proxy headers are off, so an ``X-Forwarded-For`` a client sends is never taken for its address.

The app is plain ASGI: a route table matched with one compiled pattern per trigger. Every webhook delivery passes
through it, so it does only what the host's contract needs; a web framework's request, middleware and response
objects would cost each delivery more than the signature check.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn

from castiel.devhost.convert import HttpAnswer, answer_from, http_request_from
from castiel.devhost.invocation import Invocation
from castiel.devhost.loader import HostedFunction, HttpBinding
from castiel.errors import ConfigError, PermanentError
from castiel.webhooks.receiver import MAX_BODY_BYTES

STATUS_PATH = "/admin/host/status"
# What an HTTP trigger without ``methods`` accepts (the Functions ``HttpMethod`` values).
ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

_PARAMETER = re.compile(r"\{([^{}]*)\}")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def route_pattern(route: str) -> re.Pattern[str]:
    """A Functions route template as the pattern of the paths it serves.

    ``{name}`` is one path segment, ``{*name}`` the rest of the path; constraints (``{id:int}``) are dropped because
    route parameters reach the function as strings anyway. Optional and defaulted parameters are refused.
    """
    parts: list[str] = []
    position = 0
    template = "/" + route.strip("/")
    for match in _PARAMETER.finditer(template):
        inner = match[1]
        name = inner.lstrip("*").split(":", 1)[0]
        if not name.isidentifier():
            raise ConfigError(f"route parameter {{{inner}}} in {route!r} is not supported by the dev host")
        capture = f"(?P<{name}>.*)" if inner.startswith("*") else f"(?P<{name}>[^/]+)"
        parts += [re.escape(template[position : match.start()]), capture]
        position = match.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class _Route:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    function: HostedFunction | None  # None: the host's status endpoint


def _allowed(methods: frozenset[str] | None) -> frozenset[str]:
    allowed = ALL_METHODS if methods is None else methods
    # A GET route answers HEAD as well, as the Functions host does.
    return allowed | {"HEAD"} if "GET" in allowed else allowed


class HttpApp:
    """The ASGI app serving every HTTP-triggered function in ``functions`` plus the status endpoint."""

    def __init__(
        self, functions: Sequence[HostedFunction], timeout: float | None, *, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self._timeout = timeout
        self._max_body_bytes = max_body_bytes
        self.routes: tuple[_Route, ...] = (
            _Route(re.compile(re.escape(STATUS_PATH)), _allowed(frozenset({"GET"})), None),
            *(
                _Route(route_pattern(fn.binding.route), _allowed(fn.binding.methods), fn)
                for fn in functions
                if isinstance(fn.binding, HttpBinding)
            ),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        allowed: set[str] = set()
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if method not in route.methods:
                allowed |= route.methods
                continue
            if route.function is None:
                answer = _json(200, {"state": "Running"})
            else:
                body = await _read_body(scope, receive, self._max_body_bytes)
                if body is None:  # the client went away before it finished sending: nobody to answer, nothing to run
                    return
                if isinstance(body, _TooLarge):
                    answer = _too_large(self._max_body_bytes)
                else:
                    answer = await self._invoke(route.function, match.groupdict(), scope, body)
            await _send(send, answer)
            return
        if allowed:
            answer = _json(405, {"error": f"{method} is not allowed at {path}"}, {"allow": ", ".join(sorted(allowed))})
        else:
            answer = _json(404, {"error": f"no function at {method} {path}"})
        await _send(send, answer)

    async def _invoke(
        self, function: HostedFunction, route_params: dict[str, str], scope: Scope, body: bytes
    ) -> HttpAnswer:
        request = http_request_from(scope, route_params, body)
        headers = request.headers
        invocation = Invocation(function, headers.get("x-correlation-id"), self._timeout, headers.get("traceparent"))
        try:
            answer = answer_from(await invocation.call(request))
        except Exception as exc:
            invocation.finish("failed", exc)
            payload = {"error": f"function {function.name} failed", "invocationId": invocation.invocation_id}
            return _json(500, payload)
        invocation.finish("succeeded")
        return answer


class _TooLarge:
    """A request body over the limit: declared so, or read past it."""


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | _TooLarge | None:
    """The whole request body; ``_TooLarge`` as soon as it is known to exceed ``limit`` (the rest unread); None when
    the client disconnected first."""
    if _declared_length(scope) > limit:
        return _TooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return _TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _declared_length(scope: Scope) -> int:
    """The request's ``Content-Length``, 0 when it has none (uvicorn refuses one that is not a number)."""
    for name, value in scope["headers"]:
        if name.lower() == b"content-length" and value.strip().isdigit():
            return int(value)
    return 0


def _too_large(limit: int) -> HttpAnswer:
    # The unread rest of the body would be taken for the next request: the connection cannot be kept.
    return _json(413, {"error": f"the request body exceeds {limit} bytes"}, {"connection": "close"})


def _json(status: int, payload: Mapping[str, object], headers: Mapping[str, str] | None = None) -> HttpAnswer:
    return HttpAnswer(status, orjson.dumps(payload), "application/json", headers or {})


async def _send(send: Send, answer: HttpAnswer) -> None:
    # A 204 or 304 has no body, so no length either (RFC 9110 §8.6).
    headers = [] if answer.status in (204, 304) else [(b"content-length", str(len(answer.body)).encode())]
    if answer.content_type is not None:
        headers.append((b"content-type", answer.content_type.encode("latin-1")))
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers.items()]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


class _HostOwnedSignals(uvicorn.Server):
    """uvicorn without its own signal handling: the dev host owns SIGINT/SIGTERM and stops the server itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        message = f"cannot listen on {host}:{port}: {exc.strerror}"
        # A port in use or reserved is the machine's state, not a bad flag: running again may work.
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise PermanentError(f"{message} (choose another --port)") from exc
        raise ConfigError(f"{message} (check --host)") from exc
    return sock


class HttpServer:
    """The listening socket (bound at construction, so a busy port fails fast) and the uvicorn server on it."""

    def __init__(self, app: HttpApp, *, host: str, port: int) -> None:
        self._socket = _bind(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            lifespan="off",
            access_log=False,  # the invocation line is the access log
            log_config=None,
            ws="none",
            server_header=False,
            # The peer is the socket's: trusting X-Forwarded-For from loopback would let any local client choose the
            # source address recorded with a Notion verification token.
            proxy_headers=False,
            # The host bounds shutdown itself (``cut``), so uvicorn waits for requests in flight until told.
            timeout_graceful_shutdown=None,
        )
        self._server = _HostOwnedSignals(config)

    @property
    def url(self) -> str:
        """The base URL the server answers on."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> asyncio.Task[None]:
        """Start serving; returns the server's task once it accepts connections."""
        task = asyncio.create_task(self._server.serve(sockets=[self._socket]), name="devhost-http")
        while not self._server.started:
            if task.done():
                task.result()
                raise ConfigError(f"the HTTP server on {self.url} stopped during start-up")
            await asyncio.sleep(0.005)
        return task

    def close(self) -> None:
        """Release the listening socket of a server that was never started."""
        self._socket.close()

    def stop(self) -> None:
        """Stop accepting and close idle connections; requests in flight finish, then the server's task ends."""
        self._server.should_exit = True

    def cut(self) -> None:
        """After ``stop``, stop waiting: cancel the requests in flight and close every connection still open (a
        keep-alive or slow client would otherwise hold the server, and the process, open)."""
        self._server.force_exit = True
        for task in list(self._server.server_state.tasks):
            task.cancel()
        for connection in list(self._server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
