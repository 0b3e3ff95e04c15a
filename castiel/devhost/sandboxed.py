"""``castiel serve --sandbox``: the five provider stand-ins served in the dev host's own process, a demo tenant seeded
against them, and the stand-ins' signed webhooks sent to the host — a newcomer sees data flow with nothing to set up.

Order of a start: the sandbox listens (so its URL is known), the host's settings point Google's push-token keys at
the sandbox's JWKS, the host starts; once it answers, the demo tenant is seeded (started over when it was seeded
against an earlier sandbox, whose records died with it: ``demo.start_over_if_stale``), the sandbox's webhooks are
pointed at the registrations, and the scheduler queues the tasks that are due — the first pulls.
``<data dir>/sandbox.json`` says where the sandbox is while the host runs
(``castiel sandbox edit`` reads it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from castiel.runtime import Runtime
from castiel.sandbox.demo import DEMO_TENANT, seed_demo
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.state import Sandbox
from castiel.sandbox.subscriptions import WebhookSubscriptions
from castiel.settings import Settings
from castiel.telemetry import log_event

SANDBOX_FILE = "sandbox.json"
DEFAULT_PORT = 8099
DEFAULT_RECORDS = 20
CERTS_PATH = "/google/oauth2/v3/certs"


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    """Where the sandbox listens and how many records each of its entity types is seeded with."""

    port: int = DEFAULT_PORT
    records: int = DEFAULT_RECORDS


def sandbox_url_of(data_dir: Path) -> str | None:
    """The URL of the sandbox a ``castiel serve --sandbox`` on ``data_dir`` serves, None when none runs."""
    try:
        recorded = json.loads((data_dir / SANDBOX_FILE).read_text())
    except (OSError, ValueError):
        return None
    url = recorded.get("url") if isinstance(recorded, dict) else None
    return url if isinstance(url, str) else None


class DemoSandbox:
    """The sandbox and its webhooks for the life of the host (an async context manager)."""

    def __init__(self, options: SandboxOptions, data_dir: Path) -> None:
        self._server = SandboxServer(Sandbox(records=options.records), port=options.port)
        self._file = data_dir / SANDBOX_FILE
        self._http: httpx.AsyncClient | None = None
        self._subscriptions: WebhookSubscriptions | None = None

    @property
    def url(self) -> str:
        """The sandbox's URL (once entered)."""
        return self._server.url

    def settings_for(self, settings: Settings) -> Settings:
        """``settings`` with Google's push-token keys fetched from the sandbox, which signs the demo's pushes."""
        return settings.model_copy(update={"google_certs_url": self.url + CERTS_PATH})

    async def __aenter__(self) -> DemoSandbox:
        await self._server.__aenter__()
        self._http = httpx.AsyncClient(timeout=10.0)
        self._subscriptions = WebhookSubscriptions(self._server.sandbox, self._http)
        self._file.parent.mkdir(parents=True, exist_ok=True)
        self._file.write_text(json.dumps({"url": self.url}))
        return self

    async def started(self, host_url: str, runtime: Runtime) -> None:
        """The host answers at ``host_url``: seed the demo tenant, send the webhooks there, queue the first pulls."""
        assert self._subscriptions is not None
        for subscription in await seed_demo(runtime, self._server.sandbox, self.url, host_url):
            self._subscriptions.subscribe(subscription)
        report = await runtime.scheduler.run()
        log_event("devhost.sandbox_ready", sandbox=self.url, tenant=DEMO_TENANT, first_pulls=report.queued,
                  try_it="castiel status; castiel sandbox edit github --count 1")  # fmt: skip

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._file.unlink(missing_ok=True)
        if self._subscriptions is not None:
            await self._subscriptions.drain()
        if self._http is not None:
            await self._http.aclose()
        await self._server.__aexit__(kind, error, trace)
