"""A small closed-loop HTTP/1.1 load generator over raw keep-alive sockets, for the benchmarks.

Each of ``concurrency`` connections sends its next request as soon as the previous answer is read, so the figure
is the server's throughput at that many requests in flight. Raw sockets and pre-built request bytes keep the
client's own cost per request to a few microseconds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    statuses: dict[int, int]
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.throughput:9.0f} req/s  p50 {self.percentile(0.5):6.2f} ms  p99 {self.percentile(0.99):6.2f} ms"
            f"  mean {statistics.fmean(self.latencies_ms):6.2f} ms  statuses {dict(sorted(self.statuses.items()))}"
        )


def build_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """One POST as raw bytes."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def run_load(
    host: str, port: int, requests: Sequence[bytes], *, concurrency: int, max_seconds: float
) -> LoadResult:
    """Send ``requests`` (each once, shared across connections) until done or ``max_seconds`` have passed."""
    source = iter(requests)
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for request in source:
                if time.perf_counter() > deadline:
                    break
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return LoadResult(len(latencies), time.perf_counter() - started, statuses, latencies)
