"""The baselines of ``benchmarks.webhooks``: apps that read the body and answer 200, on the server the dev host uses
(uvicorn with uvloop and httptools, no access log, no lifespan).

``--app starlette`` (the default) is the issue's reference, a bare Starlette app. ``--app asgi`` is a plain ASGI
callable with no framework at all: the dev host's own HTTP layer is plain ASGI too, so the benchmark prints our
throughput against it as well, for the reader to see both.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = b'{"accepted":1}'


async def receive(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


starlette_app = Starlette(routes=[Route("/webhooks/{registrationId}/events", receive, methods=["POST"])])


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", choices=("starlette", "asgi"), default="starlette")
    args = parser.parse_args()
    uvicorn.run(
        starlette_app if args.app == "starlette" else asgi_app, host="127.0.0.1", port=args.port, lifespan="off",
        access_log=False, log_level="warning", server_header=False, loop="uvloop", http="httptools",
    )  # fmt: skip


if __name__ == "__main__":
    main()
