"""The dev host's HTTP server over real loopback HTTP: the peer address it records and its request body limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import azure.functions as func
import httpx
import orjson
import pytest

from castiel.devhost.http import HttpApp, HttpServer
from castiel.devhost.loader import HostedFunction, HttpBinding, caller
from castiel.triggers import source_address

LIMIT = 1000
CHUNK = 600


async def record(req: func.HttpRequest) -> func.HttpResponse:
    headers = {name.lower(): value for name, value in req.headers.items()}
    seen = {"source": source_address(headers), "bodyLength": len(req.get_body())}
    return func.HttpResponse(orjson.dumps(seen), mimetype="application/json")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    app = HttpApp([HostedFunction("record", HttpBinding("record", None), caller(record, "req"))], timeout=5,
                  max_body_bytes=LIMIT)  # fmt: skip
    running = HttpServer(app, host="127.0.0.1", port=0)
    task = await running.start()
    yield running
    running.stop()
    running.cut()
    await task


async def _exchange(server: HttpServer, head: bytes, chunks: list[bytes]) -> bytes:
    """Send ``head`` and then ``chunks`` on one connection, never finishing a chunked body; the server's answer."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
        await writer.drain()
        # A guard against a hang, not a measurement: the answer must come without the rest of the body.
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


async def test_the_recorded_source_is_the_real_peer_whatever_x_forwarded_for_says(server: HttpServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/record", content=b"{}", headers={"X-Forwarded-For": "198.51.100.1, 10.0.0.1"})
    source = response.json()["source"]
    host, _, port = source.rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0


async def test_a_declared_length_over_the_limit_is_refused_before_any_of_the_body_is_sent(server: HttpServer) -> None:
    head = b"POST /record HTTP/1.1\r\nHost: x\r\nContent-Length: 500000000\r\n\r\n"
    answer = await _exchange(server, head, [])
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert f'"the request body exceeds {LIMIT} bytes"'.encode() in answer


async def test_a_chunked_body_is_refused_once_past_the_limit_without_waiting_for_its_end(server: HttpServer) -> None:
    head = b"POST /record HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = f"{CHUNK:x}\r\n".encode() + b"a" * CHUNK + b"\r\n"
    # Two chunks pass the limit; the body never ends, so an answer proves the server stopped reading.
    answer = await _exchange(server, head, [chunk, chunk])
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in answer.lower()


async def test_a_chunked_body_within_the_limit_reaches_the_function_whole(server: HttpServer) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"a" * CHUNK
        yield b"b" * (LIMIT - CHUNK)

    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/record", content=body())
    assert response.status_code == 200
    assert response.json()["bodyLength"] == LIMIT
