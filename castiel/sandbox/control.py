"""The sandbox's own endpoints under ``/_sandbox``: what an operator or a test changes while it runs.

* ``GET /_sandbox`` — base URLs, record and request counts; ``POST /_sandbox/reset`` — back to the seeded records;
* ``POST /_sandbox/{provider}/edit|delete|create`` — ``{"ids": […]}`` or ``{"count": n, "entityType": …}``;
* ``POST /_sandbox/faults`` — ``{"provider", "rate429", "rate5xx", "retryAfter", "next": [429, 503 …]}``;
  ``DELETE /_sandbox/faults`` clears every plan;
* ``GET /_sandbox/pushes[?provider=]`` — the writes the stand-ins applied;
* ``POST /_sandbox/tokens`` — ``{"strict": bool, "accept": […], "revoke": […]}``;
* ``POST /_sandbox/google/invalidate-sync-tokens``, ``POST /_sandbox/salesforce/expire-query-locators``;
* ``POST /_sandbox/webhooks`` — ``{"provider", "url", "operation", "id", "secret"?, "audience"?, "entityType"?}``
  sends that record's signed event and answers with the receiver's status and body;
* ``POST /_sandbox/subscriptions`` — ``{"provider", "url", "secret"?, "audience"?}``: from now on every change of that
  provider's records is sent there as its signed event (``subscriptions.py``); ``GET`` lists them, secrets left out.

Bad input is a 400 with the reason; an unknown provider or record a 404.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from castiel.errors import ConfigError, NotFound
from castiel.models import Operation
from castiel.sandbox.provider import json_body
from castiel.sandbox.state import Sandbox
from castiel.sandbox.subscriptions import Subscription, WebhookSubscriptions
from castiel.sandbox.webhooks import WebhookSender


def _problem(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


async def _object(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ConfigError("the body must be a JSON object")
    return body


def _guarded(handler: Any) -> Any:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except NotFound as exc:
            return _problem(404, str(exc))
        except (ConfigError, ValueError, TypeError) as exc:
            return _problem(400, str(exc))

    return run


class Control:
    """The handlers of ``/_sandbox``."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._subscriptions: WebhookSubscriptions | None = None

    def routes(self) -> list[Route]:
        """Every control route."""
        return [
            Route("/_sandbox", _guarded(self.summary), methods=["GET"]),
            Route("/_sandbox/reset", _guarded(self.reset), methods=["POST"]),
            Route("/_sandbox/faults", _guarded(self.faults), methods=["POST"]),
            Route("/_sandbox/faults", _guarded(self.clear_faults), methods=["DELETE"]),
            Route("/_sandbox/pushes", _guarded(self.pushes), methods=["GET"]),
            Route("/_sandbox/tokens", _guarded(self.tokens), methods=["POST"]),
            Route("/_sandbox/webhooks", _guarded(self.webhook), methods=["POST"]),
            Route("/_sandbox/subscriptions", _guarded(self.subscribe), methods=["POST"]),
            Route("/_sandbox/subscriptions", _guarded(self.subscribed), methods=["GET"]),
            Route("/_sandbox/google/invalidate-sync-tokens", _guarded(self.invalidate), methods=["POST"]),
            Route("/_sandbox/salesforce/expire-query-locators", _guarded(self.expire), methods=["POST"]),
            Route("/_sandbox/{provider}/{change:str}", _guarded(self.change), methods=["POST"]),
            Route("/google/oauth2/v3/certs", _guarded(self.certs), methods=["GET"]),
        ]

    async def summary(self, request: Request) -> Response:
        """Base URLs and counts."""
        return JSONResponse(self.sandbox.summary(str(request.base_url)))

    async def reset(self, request: Request) -> Response:
        """Back to the seeded records."""
        self.sandbox.reset()
        return Response(status_code=204)

    async def change(self, request: Request) -> Response:
        """Edit, delete or create records."""
        provider, change = request.path_params["provider"], request.path_params["change"]
        body = await _object(request)
        ids, count, entity_type = body.get("ids"), int(body.get("count", 1)), body.get("entityType")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise ConfigError("ids must be a list of strings")
        if change == "edit":
            return JSONResponse({"edited": self.sandbox.edit(provider, ids=ids, count=count, entity_type=entity_type)})
        if change == "delete":
            return JSONResponse(
                {"deleted": self.sandbox.delete(provider, ids=ids, count=count, entity_type=entity_type)}
            )
        if change == "create":
            return JSONResponse({"created": self.sandbox.create(provider, count=count)})
        raise NotFound(f"no sandbox change {change!r}: edit, delete or create")

    async def faults(self, request: Request) -> Response:
        """Configure one provider's faults."""
        body = await _object(request)
        provider = str(body.get("provider", ""))
        self.sandbox.api(provider)
        plan = self.sandbox.faults.configure(
            provider,
            rate_429=body.get("rate429"),
            rate_5xx=body.get("rate5xx"),
            retry_after=body.get("retryAfter"),
            next_statuses=body.get("next"),
        )
        shown = {
            "rate429": plan.rate_429,
            "rate5xx": plan.rate_5xx,
            "retryAfter": plan.retry_after,
            "next": list(plan.next),
        }
        return JSONResponse({"provider": provider, **shown})

    async def clear_faults(self, request: Request) -> Response:
        """No faults anywhere."""
        self.sandbox.faults.clear()
        return Response(status_code=204)

    async def pushes(self, request: Request) -> Response:
        """The writes applied, optionally of one provider."""
        provider = request.query_params.get("provider")
        shown = [push.to_json() for push in self.sandbox.pushes if provider in (None, push.provider)]
        return JSONResponse(shown)

    async def tokens(self, request: Request) -> Response:
        """Strictness, accepted and revoked tokens."""
        body = await _object(request)
        rules = self.sandbox.tokens
        if "strict" in body:
            rules.strict = bool(body["strict"])
        rules.accepted.update(str(token) for token in body.get("accept", []))
        rules.revoked.update(str(token) for token in body.get("revoke", []))
        return JSONResponse({"strict": rules.strict, "accepted": len(rules.accepted), "revoked": len(rules.revoked)})

    async def invalidate(self, request: Request) -> Response:
        """Google sync tokens issued so far answer 410 from now on."""
        self.sandbox.google.invalidate_sync_tokens()
        return Response(status_code=204)

    async def expire(self, request: Request) -> Response:
        """Salesforce's open query locators are invalid from now on."""
        self.sandbox.salesforce.expire_query_locators()
        return Response(status_code=204)

    async def webhook(self, request: Request) -> Response:
        """Send one signed event about one record to a URL."""
        body = await _object(request)
        provider, url, record_id = str(body.get("provider", "")), body.get("url"), body.get("id")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("url must be an http(s) URL")
        operation = Operation(str(body.get("operation", "update")))
        api = self.sandbox.api(provider)
        entity_type = body.get("entityType") or next(iter(api.datasets))
        if entity_type not in api.datasets:
            raise NotFound(f"sandbox {provider} has no {entity_type!r}")
        item = api.datasets[entity_type].get(str(record_id))
        if item is None:
            raise NotFound(f"sandbox {provider} has no record {record_id!r}")
        async with httpx.AsyncClient(timeout=10.0) as http:
            sender = WebhookSender(http, self.sandbox.signing_key, clock=self.sandbox.shared.clock)
            try:
                answer = await sender.send(
                    provider, url, operation, item.body, secret=body.get("secret"), audience=body.get("audience")
                )
            except httpx.HTTPError as exc:
                return _problem(502, f"could not deliver to {url}: {exc}")
        return JSONResponse({"status": answer.status_code, "body": answer.text[:2000]})

    async def subscribe(self, request: Request) -> Response:
        """Send a provider's changes to a URL from now on."""
        body = await _object(request)
        provider, url = str(body.get("provider", "")), body.get("url")
        self.sandbox.api(provider)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("url must be an http(s) URL")
        secret, audience = body.get("secret"), body.get("audience")
        if provider != "google" and not isinstance(secret, str):
            raise ConfigError(f"{provider} events are signed: give the registration's secret")
        if self._subscriptions is None:
            # The sends run in the server's loop, on a client of their own that lives as long as the app.
            self._subscriptions = WebhookSubscriptions(self.sandbox, httpx.AsyncClient(timeout=10.0))
        self._subscriptions.subscribe(
            Subscription(provider, url, secret, audience if isinstance(audience, str) else None)
        )
        return JSONResponse({"provider": provider, "url": url}, status_code=201)

    async def subscribed(self, request: Request) -> Response:
        """The subscriptions, without their secrets, and how many events were sent and failed."""
        found = self._subscriptions
        listed = [] if found is None else [{"provider": s.provider, "url": s.url} for s in found.subscriptions()]
        sent, failed = (0, 0) if found is None else (found.sent, found.failed)
        return JSONResponse({"subscriptions": listed, "sent": sent, "failed": failed})

    async def certs(self, request: Request) -> Response:
        """The public key of the sandbox's push tokens, as Google publishes its own."""
        return JSONResponse(self.sandbox.signing_key.jwks(), headers={"cache-control": "public, max-age=3600"})
