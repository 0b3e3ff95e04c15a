"""What every provider stand-in shares: the request wrapper (count, auth, faults, rate-limit headers), the token
rules, the log of pushes, and the on-demand changes to its data.

A stand-in subclasses ``ProviderApi``: it says how its provider refuses a token and renders a 429 or 5xx, which
headers it adds to every answer, how a record is edited, created and deleted, and which routes it serves.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from castiel.clock import Clock
from castiel.sandbox.dataset import Dataset
from castiel.sandbox.faults import Faults

Endpoint = Callable[[Request], Awaitable[Response]]


class TokenRules:
    """Which bearer tokens the stand-ins accept.

    By default any non-empty token (a demo needs no setup); ``strict`` accepts only ``accepted`` tokens and the
    current access tokens of the stand-in OAuth provider's grants. A ``revoked`` token is always refused, as an
    expired one would be, so the credentials' refresh-and-retry can be exercised.
    """

    def __init__(self) -> None:
        self.strict = False
        self.accepted: set[str] = set()
        self.revoked: set[str] = set()
        self.issued: Callable[[str], set[str]] = lambda provider: set()

    def allows(self, provider: str, token: str | None) -> bool:
        """True when ``token`` may call ``provider``'s stand-in."""
        if not token or token in self.revoked:
            return False
        return not self.strict or token in self.accepted or token in self.issued(provider)


@dataclass(frozen=True, slots=True)
class Push:
    """One write a stand-in applied: provider, method, path and JSON body."""

    provider: str
    method: str
    path: str
    body: Any
    at: str

    def to_json(self) -> dict[str, Any]:
        """``{provider, method, path, body, at}``."""
        return {"provider": self.provider, "method": self.method, "path": self.path, "body": self.body, "at": self.at}


@dataclass(slots=True)
class Shared:
    """The state every stand-in sees: the clock, faults, token rules and the push log."""

    clock: Clock
    faults: Faults
    tokens: TokenRules = field(default_factory=TokenRules)
    pushes: list[Push] = field(default_factory=list)

    def now(self) -> datetime:
        """The sandbox clock as aware UTC."""
        return datetime.fromtimestamp(self.clock(), UTC)


def bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, None without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "token") and token.strip() else None


async def json_body(request: Request) -> Any:
    """The request's JSON body, None when it is empty or not JSON."""
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


class ProviderApi(ABC):
    """One provider's stand-in."""

    name: str
    """The provider, and the path prefix its API is served under."""

    def __init__(self, shared: Shared, count: int) -> None:
        self.shared = shared
        self.count = count
        """Records seeded per entity type."""
        self.requests = 0
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Back to the seeded records, as if nothing had happened since."""

    @property
    @abstractmethod
    def datasets(self) -> dict[str, Dataset]:
        """Entity type → its records."""

    @abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The provider's paths, each wrapped by ``endpoint``."""

    @abstractmethod
    def refuse_token(self, request: Request) -> Response:
        """The provider's answer to a missing or rejected token."""

    @abstractmethod
    def fault(self, status: int, retry_after: int) -> Response:
        """The provider's 429 or 5xx."""

    def token_of(self, request: Request) -> str | None:
        """Where the provider takes the token from (the ``Authorization`` header unless it says otherwise)."""
        return bearer(request)

    def check_request(self, request: Request) -> Response | None:
        """A refusal other than auth (a missing version header), None to go on."""
        return None

    def decorate(self, response: Response) -> None:  # noqa: B027 - most providers add no headers
        """Add the provider's rate-limit headers to an answer."""

    @abstractmethod
    def edit(self, item_id: str) -> dict[str, Any]:
        """Change a record as a person would (a new title, a new modification time); returns its new body."""

    @abstractmethod
    def create(self) -> dict[str, Any]:
        """Add a record as a person would; returns its body."""

    @abstractmethod
    def delete(self, item_id: str) -> None:
        """Delete a record as a person would."""

    def endpoint(self, handler: Endpoint, *, authenticated: bool = True) -> Endpoint:
        """``handler`` behind the request count, the version check, the token check and the faults."""

        async def run(request: Request) -> Response:
            self.requests += 1
            refused = self.check_request(request)
            if refused is None and authenticated and not self.shared.tokens.allows(self.name, self.token_of(request)):
                refused = self.refuse_token(request)
            if refused is None:
                status = self.shared.faults.draw(self.name)
                if status is not None:
                    refused = self.fault(status, self.shared.faults.plan(self.name).retry_after)
            response = refused if refused is not None else await handler(request)
            self.decorate(response)
            return response

        return run

    def record_push(self, request: Request, body: Any) -> None:
        """Log a write this stand-in applied."""
        stamp = self.shared.now().isoformat().replace("+00:00", "Z")
        self.shared.pushes.append(Push(self.name, request.method, request.url.path, body, stamp))

    def ids(self, entity_type: str, count: int) -> list[str]:
        """The ids of the first ``count`` live records of ``entity_type``, oldest first."""
        found: list[str] = []
        for item in self.datasets[entity_type].after(None):
            if len(found) >= count:
                break
            found.append(item.id)
        return found


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON answer."""
    return JSONResponse(body, status_code=status, headers=headers)
