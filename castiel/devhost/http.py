"""HTTP triggers served by Starlette on uvicorn, with the Functions host's routing and answers.

Routes come from the HTTP triggers (route prefix empty); a method the trigger does not allow is 405, an unknown path
404, both with a JSON reason. An exception escaping a function is a bug: logged with its traceback, answered 500.
``GET /admin/host/status`` answers ``{"state": "Running"}`` for readiness checks, as the Functions host does.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Iterator, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from castiel.devhost.convert import http_request_from, response_from
from castiel.devhost.invocation import Invocation
from castiel.devhost.loader import HostedFunction, HttpBinding
from castiel.errors import ConfigError

STATUS_PATH = "/admin/host/status"
# What an HTTP trigger without ``methods`` accepts (the Functions ``HttpMethod`` values).
ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

_PARAMETER = re.compile(r"\{([^{}]*)\}")


def starlette_path(route: str) -> str:
    """A Functions route template as a Starlette path.

    ``{name}`` stays, ``{*name}`` takes the rest of the path, constraints (``{id:int}``) are dropped because route
    parameters reach the function as strings anyway. Optional and defaulted parameters are refused.
    """

    def parameter(match: re.Match[str]) -> str:
        inner = match[1]
        name = inner.lstrip("*").split(":", 1)[0]
        if not name.isidentifier():
            raise ConfigError(f"route parameter {{{inner}}} in {route!r} is not supported by the dev host")
        return f"{{{name}:path}}" if inner.startswith("*") else f"{{{name}}}"

    return "/" + _PARAMETER.sub(parameter, route.strip("/"))


def _endpoint(function: HostedFunction, timeout: float | None) -> Route:
    binding = function.binding
    assert isinstance(binding, HttpBinding)

    async def invoke(request: Request) -> Response:
        invocation = Invocation(function, request.headers.get("x-correlation-id"), timeout)
        try:
            result = await invocation.call(http_request_from(request, await request.body()))
            response = response_from(result)
        except Exception as exc:
            invocation.finish("failed", exc)
            return JSONResponse(
                {"error": f"function {function.name} failed", "invocationId": invocation.invocation_id},
                status_code=500,
            )
        invocation.finish("succeeded")
        return response

    methods = sorted(binding.methods if binding.methods is not None else ALL_METHODS)
    return Route(starlette_path(binding.route), invoke, methods=methods, name=function.name)


async def _status(_: Request) -> Response:
    return JSONResponse({"state": "Running"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        reason = f"no function at {request.method} {request.url.path}"
    elif exc.status_code == 405:
        reason = f"{request.method} is not allowed at {request.url.path}"
    else:
        reason = exc.detail
    return JSONResponse({"error": reason}, status_code=exc.status_code, headers=exc.headers)


def build_app(functions: Sequence[HostedFunction], timeout: float | None) -> Starlette:
    """The ASGI app serving every HTTP-triggered function in ``functions`` plus the status endpoint."""
    routes: list[BaseRoute] = [Route(STATUS_PATH, _status, methods=["GET"])]
    routes += [_endpoint(fn, timeout) for fn in functions if isinstance(fn.binding, HttpBinding)]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


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
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class HttpServer:
    """The listening socket (bound at construction, so a busy port fails fast) and the uvicorn server on it."""

    def __init__(self, app: Starlette, *, host: str, port: int, graceful_timeout: float | None) -> None:
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
            timeout_graceful_shutdown=None if graceful_timeout is None else int(graceful_timeout) + 1,
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

    def stop(self) -> None:
        """Stop accepting; requests in flight finish, then the server's task ends."""
        self._server.should_exit = True
