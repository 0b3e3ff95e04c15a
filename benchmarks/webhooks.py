"""Webhook receiver speed: ``python -m benchmarks.webhooks``.

(a) In process: the full receiver path (lookup, verify, parse, idempotency, durable enqueue, audit) per request,
    against a bare HMAC-SHA256 verify of the same 2 KB body.
(b) Over HTTP: ``castiel serve`` answering signed GitHub deliveries, against a bare app that reads the body and
    answers 200 on the same server (uvicorn, uvloop, httptools), at concurrency 16 and 64, in the same run. The
    ratio's baseline is the issue's reference, a bare Starlette app; a plain ASGI callable (no framework, like the
    dev host's own HTTP layer) is measured too and printed for comparison. So are two floors, to show where the
    time goes: the dev host running an empty function (``empty_function_app``), and the issue's prototype
    (``bare_app --app prototype``: verify, one Redis script, one group-committed SQLite write, no host). All servers
    stay up and are measured in alternating rounds, so drift of a shared, noisy machine falls on every side of each
    ratio.

Every request is a distinct delivery (its own ``X-GitHub-Delivery`` and signature), so idempotency never
short-circuits the work. Ends with the ``RESULT`` lines the issue names.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import redis.asyncio as aioredis

from benchmarks.loadgen import LoadResult, build_request, run_load
from castiel.backends import sqlite_queue, sqlite_store
from castiel.backends.embedded_redis import EmbeddedRedis, free_port
from castiel.backends.local_secrets import LocalSecretStore
from castiel.backends.sqlite_engine import DATABASE_FILE, SqliteDatabase
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.credentials.webhook_secrets import WebhookSecrets
from castiel.models import Provider, WebhookRegistration
from castiel.webhooks.google_oidc import GoogleSigningKeys
from castiel.webhooks.ledger import DeliveryLedger
from castiel.webhooks.receiver import WebhookReceiver, WebhookRequest
from castiel.webhooks.registrations import WebhookRegistrations
from castiel.webhooks.schemes import GITHUB
from castiel.webhooks.verifier_cache import VerifierCache

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret"
REGISTRATION_ID = "bench-github"
BODY_BYTES = 2048
ROUNDS = 4
ROUND_SECONDS = 2.0
OURS_PER_ROUND = 20_000  # more than ours or the prototype can answer in a round here; a round ends if it runs out
BARE_PER_ROUND = 60_000  # likewise for the others


FLOORS = {
    "empty": "the dev host running an empty function",
    "prototype": "the issue's prototype (verify, one Redis script, one group-committed SQLite write; no host)",
}


def github_body() -> bytes:
    """A real-shaped ``issues.opened`` payload padded to 2 KB."""
    payload = orjson.loads((ROOT / "tests/unit/webhooks/payloads/github/issues_opened.json").read_bytes())
    payload["issue"]["body"] = ""
    size = len(orjson.dumps(payload))
    payload["issue"]["body"] = "x" * max(0, BODY_BYTES - size)
    return orjson.dumps(payload)


def signed_headers(body: bytes) -> dict[str, str]:
    headers = GITHUB.sign(body, SECRET, now=time.time(), delivery_id=str(uuid.uuid4()))
    return {**headers, "X-GitHub-Event": "issues", "Content-Type": "application/json"}


class Components:
    """The receiver wired from real embedded backends in ``data_dir``."""

    def __init__(self, data_dir: Path, redis_url: str) -> None:
        self.database = SqliteDatabase(data_dir / DATABASE_FILE, sqlite_store.SCHEMA + sqlite_queue.SCHEMA)
        self.store = SqliteDocumentStore(self.database)
        self.queue = SqliteMessageQueue(self.database)
        self.secrets = LocalSecretStore(data_dir)
        self.redis = aioredis.Redis.from_url(redis_url)
        self.http = httpx.AsyncClient()
        self.registrations = WebhookRegistrations(self.store)
        verifiers = VerifierCache(WebhookSecrets(self.store, self.secrets), GoogleSigningKeys(self.http))
        self.receiver = WebhookReceiver(
            self.registrations,
            verifiers,
            DeliveryLedger(self.redis, self.store),
            self.store,
            self.queue,
            self.secrets,
            queue_name="sync-outbound",
        )

    async def register(self) -> None:
        await self.secrets.set_secret("bench--gh--webhook-secret", SECRET)
        await self.registrations.add(
            WebhookRegistration(
                id=REGISTRATION_ID,
                tenant_id="bench",
                provider=Provider.GITHUB,
                connection_id="gh",
                integration_id="github",
                secret_name="bench--gh--webhook-secret",
            )
        )

    async def close(self) -> None:
        await self.receiver.drain()
        await self.http.aclose()
        await self.redis.aclose()
        for closable in (self.queue, self.store, self.secrets, self.database):
            await closable.close()


def bare_hmac_seconds(body: bytes, rounds: int = 20_000) -> float:
    """Seconds per verification of the same body by a bare HMAC-SHA256 and constant-time compare."""
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    started = time.perf_counter()
    for _ in range(rounds):
        hmac.compare_digest(hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(), expected)
    return (time.perf_counter() - started) / rounds


async def in_process(redis_url: str, body: bytes) -> tuple[float, float]:
    """(sequential seconds per request, amortised seconds per request at concurrency 16)."""
    with tempfile.TemporaryDirectory(prefix="bench-inproc-") as tmp:
        parts = Components(Path(tmp), redis_url)
        await parts.register()

        def request() -> WebhookRequest:
            headers = {name.lower(): value for name, value in signed_headers(body).items()}
            return WebhookRequest(REGISTRATION_ID, headers, body)

        for item in [request() for _ in range(200)]:  # warm-up: caches, connections, SQLite pages
            assert (await parts.receiver.handle(item)).status == 202
        sequential = [request() for _ in range(500)]
        started = time.perf_counter()
        for item in sequential:
            await parts.receiver.handle(item)
        per_sequential = (time.perf_counter() - started) / len(sequential)

        concurrent = [request() for _ in range(4000)]
        gate = asyncio.Semaphore(16)

        async def one(item: WebhookRequest) -> int:
            async with gate:
                return (await parts.receiver.handle(item)).status

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(item) for item in concurrent))
        per_concurrent = (time.perf_counter() - started) / len(concurrent)
        assert set(statuses) == {202}, set(statuses)
        await parts.close()
        return per_sequential, per_concurrent


@contextmanager
def server(args: list[str], port: int, env: dict[str, str]) -> Iterator[None]:
    """A server subprocess, ready when it answers on ``port``; stopped with SIGTERM."""
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(f"http://127.0.0.1:{port}/webhooks/none/events", content=b"{}", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise RuntimeError(f"server {args} exited with {process.returncode}") from None
                time.sleep(0.1)
        else:
            raise RuntimeError(f"server {args} did not answer on port {port}")
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def http_requests(port: int, body: bytes, count: int) -> list[bytes]:
    path = f"/webhooks/{REGISTRATION_ID}/events"
    return [build_request("127.0.0.1", port, path, signed_headers(body), body) for _ in range(count)]


def merged(results: list[LoadResult]) -> LoadResult:
    """Rounds of one server and concurrency as one result."""
    statuses: dict[int, int] = {}
    for result in results:
        for status, count in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return LoadResult(
        sum(result.requests for result in results),
        sum(result.seconds for result in results),
        statuses,
        [latency for result in results for latency in result.latencies_ms],
    )


def unique_requests(port: int, body: bytes) -> Iterator[bytes]:
    """Signed deliveries, each with its own id: for servers whose idempotency would short-circuit a repeat."""
    while True:
        yield from http_requests(port, body, 1000)


def over_http(redis_url: str, body: bytes) -> dict[tuple[str, int], LoadResult]:
    """Alternating rounds against every server, per concurrency."""
    rounds: dict[tuple[str, int], list[LoadResult]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        data_dir = Path(tmp)

        async def seed() -> None:
            parts = Components(data_dir, redis_url)
            await parts.register()
            await parts.close()

        asyncio.run(seed())
        env = {**os.environ, "CASTIEL_DATA_DIR": str(data_dir), "REDIS_URL": redis_url}
        ports = {name: free_port() for name in ("ours", "empty", "prototype", "bare", "asgi")}
        serve = [sys.executable, "-m", "castiel.cli", "serve", "--only", "webhook_receiver", "--port"]
        baseline = [sys.executable, "-m", "benchmarks.bare_app", "--port"]
        commands = {
            "ours": [*serve, str(ports["ours"])],
            "empty": [*serve, str(ports["empty"]), "--app", "benchmarks.empty_function_app:app"],
            "prototype": [
                *baseline,
                str(ports["prototype"]),
                "--app",
                "prototype",
                "--secret",
                SECRET,
                "--redis-url",
                redis_url,
                "--data-dir",
                tmp,
            ],
            "bare": [*baseline, str(ports["bare"])],
            "asgi": [*baseline, str(ports["asgi"]), "--app", "asgi"],
        }
        # Ours and the prototype need every delivery unique (idempotency would short-circuit a repeat): signed as
        # they are consumed, between rounds. The others ignore what they read, so their pools are reused.
        unique = {name: unique_requests(ports[name], body) for name in ("ours", "prototype")}
        pools = {name: http_requests(ports[name], body, BARE_PER_ROUND) for name in ("empty", "bare", "asgi")}

        def batch(name: str, size: int | None = None) -> list[bytes]:
            if name in unique:
                return list(itertools.islice(unique[name], size or OURS_PER_ROUND))
            return pools[name][:size]

        with contextlib.ExitStack() as servers:
            for name, command in commands.items():
                servers.enter_context(server(command, ports[name], env))
            for name, port in ports.items():  # warm-up
                asyncio.run(run_load("127.0.0.1", port, batch(name, 300), concurrency=16, max_seconds=10))
            for concurrency in (16, 64):
                for _ in range(ROUNDS):
                    for name, port in ports.items():
                        requests = batch(name)
                        result = asyncio.run(
                            run_load("127.0.0.1", port, requests, concurrency=concurrency, max_seconds=ROUND_SECONDS)
                        )
                        rounds.setdefault((name, concurrency), []).append(result)
    return {key: merged(results) for key, results in rounds.items()}


def main() -> None:
    body = github_body()
    embedded = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        embedded = EmbeddedRedis().start()
        redis_url = embedded.url
    try:
        hmac_s = bare_hmac_seconds(body)
        sequential_s, concurrent_s = asyncio.run(in_process(redis_url, body))
        print(f"body {len(body)} bytes")
        print(f"(a) bare HMAC verify            {hmac_s * 1e6:9.1f} us/request")
        print(f"(a) receiver, sequential        {sequential_s * 1e6:9.1f} us/request (each waits for its own commit)")
        print(f"(a) receiver, 16 in flight      {concurrent_s * 1e6:9.1f} us/request (group commit amortised)")
        results = over_http(redis_url, body)
        for (name, concurrency), result in sorted(results.items()):
            print(f"(b) {name:<5} c={concurrency:<3} {result.summary()}")
    finally:
        if embedded is not None:
            embedded.stop()
    ours16, bare16 = results[("ours", 16)], results[("bare", 16)]
    print(f"(b) ours / plain ASGI app at c=16: {ours16.throughput / results[('asgi', 16)].throughput:.3f}")
    for name, what in FLOORS.items():
        print(f"(b) floor, {what} / bare at c=16: {results[(name, 16)].throughput / bare16.throughput:.3f}")
    print(f"RESULT inproc_vs_hmac_ratio {concurrent_s / hmac_s:.1f}")
    print(f"RESULT http_ratio {ours16.throughput / bare16.throughput:.3f}")
    print(f"RESULT p99_ms_c16 {ours16.percentile(0.99):.2f}")


if __name__ == "__main__":
    main()
