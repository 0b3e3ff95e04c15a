"""The baseline server of ``benchmarks.webhooks``: an ASGI app that reads the body and answers 200, served by the
same stack as the dev host (Starlette on uvicorn with uvloop and httptools, no access log)."""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    await request.body()
    return Response(b'{"accepted":1}', media_type="application/json")


app = Starlette(routes=[Route("/webhooks/{registrationId}/events", receive, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(
        app, host="127.0.0.1", port=port, lifespan="off", access_log=False, log_level="warning",
        server_header=False, loop="uvloop", http="httptools",
    )  # fmt: skip


if __name__ == "__main__":
    main()
