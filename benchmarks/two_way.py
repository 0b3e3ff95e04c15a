"""Two-way sync latency: ``python -m benchmarks.two_way [--webhooks 1000] [--rate 20] [--issues 100]``.

Three processes: the sandbox (``castiel sandbox serve``), the service (``castiel serve`` on a fresh data directory,
limits raised so that they do not pace the run), and this driver. Tenant ``demo`` is seeded as ``make run`` seeds it —
GitHub issues and a Notion tasks database on one ``task`` shard type, both ways, webhooks registered — and the sandbox
sends Notion's signed webhooks to the service, so each of our writes to Notion comes back and must be dropped. The
service's first pulls create every issue in Notion and every page in GitHub; then the measured phase:

* ``--webhooks`` times, at a steady ``--rate`` per second: a person's edit of a GitHub issue (the sandbox's control;
  each of ``--issues`` issues in turn) and GitHub's signed ``issues.edited`` webhook for it, sent by this driver to
  the service. ``webhook_to_push`` is, per webhook, the time from its 202 to the sandbox recording the Notion PATCH that
  carries its title (the sandbox's push log; one wall clock on one machine);
* ``echo_writes``: writes the sandbox recorded to GitHub during the phase — any would be ours coming back.

Baselines measured in the same run: the sandbox's own push round trip (the same PATCH sent straight to its Notion
from here) and the receiver's answer time (webhook sent → 202). Ends with the ``RESULT`` lines of issue 14.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from castiel.backends.embedded_redis import EmbeddedRedis, free_port
from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.credentials.types import parse_credential
from castiel.models import Connection, Operation
from castiel.runtime import Runtime
from castiel.sandbox.demo import DEMO_CONNECTIONS, seed_tenant
from castiel.sandbox.state import base_urls
from castiel.sandbox.subscriptions import Subscription
from castiel.sandbox.webhooks import PushSigningKey, WebhookSender
from castiel.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
HIGH = 10_000_000
LIMITS = {
    "defaults": {
        "tenant": HIGH,
        "integrations": {"github": HIGH, "notion": HIGH},
        "operations": {"fetch": HIGH, "create": HIGH, "update": HIGH, "delete": HIGH},
    }
}
PAIR = [spec for spec in DEMO_CONNECTIONS if spec.provider.value in ("github", "notion")]
HOOK = "/webhooks/demo-github-webhook/events"
BASELINE_PUSHES = 200
SETTLE_TIMEOUT = 300.0


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, stopped with SIGTERM at the end (killed if it does not stop)."""
    with log.open("wb") as out:
        child = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(30)


async def answers(url: str) -> None:
    async with httpx.AsyncClient(timeout=2.0) as http:
        for _ in range(300):
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


async def seed(data_dir: Path, redis_url: str, sandbox: str, host: str) -> dict[str, Subscription]:
    """Tenant demo's GitHub and Notion connections (a bearer token each: the sandbox accepts any) and registrations."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, rate_limit_overrides=LIMITS)
    runtime = Runtime.build(settings)
    try:

        def credential(connection: Connection) -> Any:
            return parse_credential("bearer_token", {"token": f"bench-{connection.id}"})

        found = await seed_tenant(runtime, base_urls(sandbox), host, credential, PAIR)
    finally:
        await runtime.aclose()
    return {subscription.provider: subscription for subscription in found}


async def pushes(http: httpx.AsyncClient, sandbox: str, provider: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await http.get(f"{sandbox}/_sandbox/pushes", params={"provider": provider})).json()
    return found


async def idle(data_dir: Path) -> bool:
    queue = SqliteMessageQueue(data_dir / DATABASE_FILE)
    try:
        stats = [await queue.stats(name) for name in ("sync-inbound", "sync-outbound")]
    finally:
        await queue.close()
    return all(stat.active == 0 and stat.scheduled == 0 for stat in stats)


async def settle(http: httpx.AsyncClient, sandbox: str, data_dir: Path) -> None:
    """Until the queues are empty and the sandbox has seen no write for a second."""
    deadline, last, quiet_since = time.monotonic() + SETTLE_TIMEOUT, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len((await http.get(f"{sandbox}/_sandbox/pushes")).json())
        if count != last:
            last, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since > 1.0 and await idle(data_dir):
            return
        await asyncio.sleep(0.2)
    raise SystemExit("the sync did not settle")


async def baseline(http: httpx.AsyncClient, sandbox: str) -> list[float]:
    """The sandbox's own push round trip: a Notion PATCH sent straight to it, in ms."""
    page = (await http.post(f"{sandbox}/_sandbox/notion/create", json={"count": 1})).json()["created"][0]["id"]
    headers = {"Authorization": "Bearer baseline", "Notion-Version": "2025-09-03"}
    body = {"properties": {"Name": {"title": [{"text": {"content": "baseline"}}]}}}
    times = []
    for _ in range(BASELINE_PUSHES):
        started = time.perf_counter()
        answer = await http.patch(f"{sandbox}/notion/v1/pages/{page}", json=body, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return times


def title_of(push: dict[str, Any]) -> str | None:
    try:
        return str(push["body"]["properties"]["Name"]["title"][0]["text"]["content"])
    except (KeyError, IndexError, TypeError):
        return None


async def measured(args: argparse.Namespace, http: httpx.AsyncClient, sandbox: str, host: str, data_dir: Path,
                   github: Subscription) -> dict[str, Any]:  # fmt: skip
    pool = [str(push_id) for push_id in (1_000_000_000 + number for number in range(1, args.issues + 1) if number % 10)]
    sender = WebhookSender(http, PushSigningKey())
    echo_before = len(await pushes(http, sandbox, "github"))
    sent: dict[str, float] = {}
    answered: list[float] = []
    started = time.monotonic()
    for n in range(args.webhooks):
        await asyncio.sleep(max(0.0, started + n / args.rate - time.monotonic()))
        edit = await http.post(f"{sandbox}/_sandbox/github/edit", json={"ids": [pool[n % len(pool)]]})
        [issue] = edit.json()["edited"]
        body, headers = sender.signed("github", Operation.UPDATE, issue, secret=github.secret, audience=host,
                                      now=time.time())  # fmt: skip
        headers["X-GitHub-Delivery"] = f"bench-{n}"
        before = time.perf_counter()
        answer = await http.post(f"{host}{HOOK}", content=body, headers={"Content-Type": "application/json", **headers})
        answered.append((time.perf_counter() - before) * 1000)
        if answer.status_code != 202:
            raise SystemExit(f"webhook {n}: HTTP {answer.status_code} {answer.text[:200]}")
        sent[issue["title"]] = time.time()
    await settle(http, sandbox, data_dir)
    landed = {
        title: datetime.fromisoformat(push["at"]).timestamp()
        for push in await pushes(http, sandbox, "notion")
        if push["method"] == "PATCH" and (title := title_of(push)) in sent
    }
    missing = len(sent) - len(landed)
    latencies = [(landed[title] - at) * 1000 for title, at in sent.items() if title in landed]
    return {
        "latencies": latencies,
        "missing": missing,
        "answered": answered,
        "echo": len(await pushes(http, sandbox, "github")) - echo_before,
        "seconds": time.monotonic() - started,
    }


async def run(args: argparse.Namespace, work: Path, redis_url: str) -> None:
    sandbox_port, host_port = free_port(), free_port()
    sandbox, host = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{host_port}"
    data_dir = work / "data"
    env = {**os.environ, "CASTIEL_DATA_DIR": str(data_dir), "REDIS_URL": redis_url,
           "RATE_LIMIT_OVERRIDES": json.dumps(LIMITS)}  # fmt: skip
    argv = [sys.executable, "-m", "castiel.cli"]
    records = str(max(args.issues, 10))
    with process([*argv, "sandbox", "serve", "--port", str(sandbox_port), "--records", records], env,
                 work / "sandbox.log"):  # fmt: skip
        await answers(f"{sandbox}/_sandbox")
        async with httpx.AsyncClient(timeout=30.0) as http:
            roundtrip = await baseline(http, sandbox)
            subscriptions = await seed(data_dir, redis_url, sandbox, host)
            notion = subscriptions["notion"]
            await http.post(f"{sandbox}/_sandbox/subscriptions",
                            json={"provider": "notion", "url": notion.url, "secret": notion.secret})  # fmt: skip
            with process([*argv, "serve", "--port", str(host_port), "--run-timers-now"], env, work / "serve.log"):
                await answers(f"{host}/admin/host/status")
                await settle(http, sandbox, data_dir)
                created = {
                    provider: sum(push["method"] == "POST" for push in await pushes(http, sandbox, provider))
                    for provider in ("github", "notion")
                }
                print(f"first sync: {created['notion']} tasks created in Notion, {created['github']} in GitHub")
                result = await measured(args, http, sandbox, host, data_dir, subscriptions["github"])
    report(args, result, roundtrip)


def report(args: argparse.Namespace, result: dict[str, Any], roundtrip: list[float]) -> None:
    latencies, answered = result["latencies"], result["answered"]
    if not latencies:
        raise SystemExit("no push landed")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    base = statistics.median(roundtrip)
    print(f"{args.webhooks} webhooks at {args.rate}/s in {result['seconds']:.1f} s; {result['missing']} never landed")
    print(f"webhook → push landed: p50 {p50:.1f} ms  p90 {percentile(latencies, 0.9):.1f} ms  p99 {p99:.1f} ms  "
          f"max {max(latencies):.1f} ms")  # fmt: skip
    answer_p50, answer_p99 = statistics.median(answered), percentile(answered, 0.99)
    print(f"baseline: sandbox push round trip p50 {base:.2f} ms (p99 {percentile(roundtrip, 0.99):.2f} ms); "
          f"receiver 202 p50 {answer_p50:.2f} ms (p99 {answer_p99:.2f} ms)")  # fmt: skip
    print(f"ratio: webhook→push p50 / sandbox push round trip p50 = {p50 / base:.1f}x")
    print(f"RESULT webhook_to_push_p50_ms {p50:.1f}")
    print(f"RESULT webhook_to_push_p99_ms {p99:.1f}")
    print(f"RESULT echo_writes {result['echo']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="webhooks per second")
    parser.add_argument("--issues", type=int, default=100, help="issues edited in turn (and synced both ways)")
    args = parser.parse_args()
    embedded = None if os.environ.get("REDIS_URL") else EmbeddedRedis().start()
    redis_url = os.environ.get("REDIS_URL") or (embedded.url if embedded else "")
    try:
        with tempfile.TemporaryDirectory(prefix="two-way-") as work:
            asyncio.run(run(args, Path(work), redis_url))
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main()
