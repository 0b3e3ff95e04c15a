"""The baselines of ``benchmarks.webhooks``, on the server the dev host uses (uvicorn with uvloop and httptools, no
access log, no lifespan).

``--app starlette`` (the default) is the issue's reference, a bare Starlette app that reads the body and answers 200.
``--app asgi`` is the same with no framework at all: the dev host's own HTTP layer is plain ASGI too, so the benchmark
prints our throughput against it as well, for the reader to see both.

``--app prototype`` is the issue's prototype, a floor rather than a baseline: what a webhook costs with nothing but
the work the issue says is unavoidable. It verifies a GitHub signature, claims the delivery id with one coalesced Redis
script per event-loop turn and stores the event with one group-committed SQLite insert (the dev host's own
``Coalescer`` and ``SqliteDatabase``), then answers 202. No host, no registration lookup, no models, no audit, no log.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from castiel.backends.sqlite_engine import SqliteDatabase
from castiel.coalesce import Coalescer

ANSWER = b'{"accepted":1}'


async def receive(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


starlette_app = Starlette(routes=[Route("/webhooks/{registrationId}/events", receive, methods=["POST"])])


async def read_body(receive: Any) -> bytes:
    """The whole request body, from as many ASGI messages as the server sends it in."""
    chunks = []
    more_body = True
    while more_body:
        message = await receive()
        chunks.append(message.get("body", b""))
        more_body = message.get("more_body", False)
    return b"".join(chunks)


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await read_body(receive)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


_CLAIM = """
local replies = {}
for i, key in ipairs(KEYS) do replies[i] = redis.call('SET', key, '1', 'NX', 'EX', 86400) and 1 or 0 end
return replies
"""
_EVENTS = "CREATE TABLE IF NOT EXISTS events (delivery_id TEXT PRIMARY KEY, body BLOB NOT NULL)"


class PrototypeApp:
    """Verify, one Redis round trip and one durable write per event-loop turn, then 202 (see the module docstring)."""

    def __init__(self, secret: str, redis_url: str, data_dir: Path) -> None:
        self._secret = secret.encode()
        self._claim = aioredis.Redis.from_url(redis_url).register_script(_CLAIM)
        self._database = SqliteDatabase(data_dir / "prototype.db", _EVENTS)
        self._claims: Coalescer[str, int] = Coalescer(self._claim_all)
        self._inserts: Coalescer[tuple[str, bytes], None] = Coalescer(self._insert_all)

    async def _claim_all(self, keys: list[str]) -> list[int]:
        replies: list[int] = await self._claim(keys=keys)
        return replies

    async def _insert_all(self, rows: list[tuple[str, bytes]]) -> list[None]:
        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO events VALUES (?, ?)", rows)

        await self._database.write(insert)
        return [None] * len(rows)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = dict(scope["headers"])
        signature = headers.get(b"x-hub-signature-256", b"").removeprefix(b"sha256=")
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(signature, expected):
            status, answer = 401, b'{"error":"signature"}'
        else:
            event = orjson.loads(body)
            delivery_id = headers[b"x-github-delivery"].decode()
            if await self._claims.submit(f"prototype:seen:{delivery_id}"):
                change = {"entityId": str(event["issue"]["id"]), "action": event["action"]}
                await self._inserts.submit((delivery_id, orjson.dumps(change)))
                status, answer = 202, ANSWER
            else:
                status, answer = 200, b'{"duplicate":true}'
        headers_out = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": answer})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", choices=("starlette", "asgi", "prototype"), default="starlette")
    parser.add_argument("--secret", help="prototype: the GitHub webhook secret")
    parser.add_argument("--redis-url", help="prototype: the Redis server")
    parser.add_argument("--data-dir", type=Path, help="prototype: where its SQLite file goes")
    args = parser.parse_args()
    apps: dict[str, Any] = {"starlette": starlette_app, "asgi": asgi_app}
    if args.app == "prototype":
        if not (args.secret and args.redis_url and args.data_dir):
            parser.error("--app prototype needs --secret, --redis-url and --data-dir")
        apps["prototype"] = PrototypeApp(args.secret, args.redis_url, args.data_dir)
    uvicorn.run(
        apps[args.app], host="127.0.0.1", port=args.port, lifespan="off",
        access_log=False, log_level="warning", server_header=False, loop="uvloop", http="httptools",
    )  # fmt: skip


if __name__ == "__main__":
    main()
