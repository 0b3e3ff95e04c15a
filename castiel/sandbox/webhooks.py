"""A sender of correctly signed provider webhooks, for the demo and end-to-end tests of the webhook receiver.

Each provider's event is shaped as the provider sends it and signed with the scheme of ``castiel.webhooks.schemes``
the receiver verifies: GitHub ``issues`` events (``X-Hub-Signature-256``), Slack Events API ``message`` callbacks
(``X-Slack-Signature`` over ``v0:{timestamp}:{body}``), Notion ``page.*`` events (``X-Notion-Signature``), Salesforce
Change Data Capture events from a signed Apex callout (Standard Webhooks headers), and Google Pub/Sub push messages
whose ``Authorization: Bearer`` is an RS256 OIDC token signed by the sandbox's own key — published as a JWKS at
``/google/oauth2/v3/certs``, which a receiver must be pointed at instead of Google's.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from castiel.clock import Clock, system_clock
from castiel.errors import ConfigError
from castiel.models import Operation
from castiel.sandbox.slack import CHANNEL_ID
from castiel.webhooks.schemes import GITHUB, NOTION, SLACK, STANDARD

PUSH_SERVICE_ACCOUNT = "pubsub-push@castiel-sandbox.iam.gserviceaccount.com"
PUSH_ISSUER = "https://accounts.google.com"
KEY_ID = "castiel-sandbox-1"
_VERBS = {
    "github": {Operation.CREATE: "opened", Operation.UPDATE: "edited", Operation.DELETE: "deleted"},
    "notion": {
        Operation.CREATE: "page.created",
        Operation.UPDATE: "page.properties_updated",
        Operation.DELETE: "page.deleted",
    },
    "salesforce": {Operation.CREATE: "CREATE", Operation.UPDATE: "UPDATE", Operation.DELETE: "DELETE"},
    "google": {Operation.CREATE: "created", Operation.UPDATE: "updated", Operation.DELETE: "deleted"},
}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PushSigningKey:
    """The sandbox's stand-in for Google's token-signing key: signs push tokens, publishes its public half."""

    @cached_property
    def _private(self) -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        """``{"keys": [<the public JWK>]}``."""
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._private.public_key()))
        return {"keys": [{**public, "kid": KEY_ID, "alg": "RS256", "use": "sig"}]}

    def token(self, *, audience: str, now: float) -> str:
        """A push token as Pub/Sub signs one for ``audience``."""
        claims = {
            "iss": PUSH_ISSUER,
            "aud": audience,
            "email": PUSH_SERVICE_ACCOUNT,
            "email_verified": True,
            "sub": "112233445566778899000",
            "iat": int(now),
            "exp": int(now) + 3600,
        }
        return jwt.encode(claims, self._private, algorithm="RS256", headers={"kid": KEY_ID})


class WebhookSender:
    """Builds, signs and POSTs one provider event about one record."""

    def __init__(self, http: httpx.AsyncClient, signing_key: PushSigningKey, *, clock: Clock = system_clock) -> None:
        self._http = http
        self._key = signing_key
        self._clock = clock

    async def send(
        self,
        provider: str,
        url: str,
        operation: Operation,
        record: dict[str, Any],
        *,
        secret: str | None = None,
        audience: str | None = None,
    ) -> httpx.Response:
        """POST the event; the receiver's answer comes back as it is."""
        now = self._clock()
        body, headers = self.signed(provider, operation, record, secret=secret, audience=audience or url, now=now)
        return await self._http.post(url, content=body, headers={"Content-Type": "application/json", **headers})

    def signed(
        self,
        provider: str,
        operation: Operation,
        record: dict[str, Any],
        *,
        secret: str | None,
        audience: str,
        now: float,
    ) -> tuple[bytes, dict[str, str]]:
        """The raw body and headers of the event, signed."""
        if provider == "google":
            body = json.dumps(_google(operation, record, now)).encode()
            return body, {"Authorization": f"Bearer {self._key.token(audience=audience, now=now)}"}
        if not secret:
            raise ConfigError(f"a {provider} webhook needs the registration's secret to be signed")
        if provider == "github":
            body = json.dumps(_github(operation, record)).encode()
            return body, {"X-GitHub-Event": "issues", **GITHUB.sign(body, secret, now=now)}
        if provider == "slack":
            body = json.dumps(_slack(operation, record, now)).encode()
            return body, SLACK.sign(body, secret, now=now)
        if provider == "notion":
            body = json.dumps(_notion(operation, record, now)).encode()
            return body, NOTION.sign(body, secret, now=now)
        if provider == "salesforce":
            body = json.dumps(_salesforce(operation, record, now)).encode()
            return body, STANDARD.sign(body, secret, now=now)
        raise ConfigError(f"no sandbox webhooks for provider {provider!r}")


def _github(operation: Operation, issue: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": _VERBS["github"][operation],
        "issue": issue,
        "repository": {"id": 1296269, "full_name": "acme/widgets"},
        "sender": {"login": "octocat", "id": 1},
    }


def _slack(operation: Operation, message: dict[str, Any], now: float) -> dict[str, Any]:
    event_ts = f"{now:.6f}"
    if operation is Operation.CREATE:
        event = {**message, "channel": CHANNEL_ID, "event_ts": message["ts"], "channel_type": "channel"}
    elif operation is Operation.UPDATE:
        event = {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": CHANNEL_ID,
            "ts": event_ts,
            "message": message,
            "event_ts": event_ts,
        }
    else:
        event = {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": CHANNEL_ID,
            "ts": event_ts,
            "deleted_ts": message["ts"],
            "event_ts": event_ts,
        }
    return {
        "type": "event_callback",
        "team_id": "T0SANDBOX1",
        "api_app_id": "A0CASTIEL1",
        "event": event,
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(now),
    }


def _notion(operation: Operation, page: dict[str, Any], now: float) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "timestamp": _iso(now),
        "workspace_id": "13950b26-c203-4f3b-b97d-93ec06319565",
        "workspace_name": "Castiel sandbox",
        "subscription_id": "29d75c0d-5546-4414-8459-7b7a92f1fc4b",
        "integration_id": "0ef104cd-477e-4e6a-9b3a-2f6b2c6ca2b7",
        "type": _VERBS["notion"][operation],
        "authors": [{"id": "c7c11cca-1d73-471d-9b6e-bdef51470190", "type": "person"}],
        "attempt_number": 1,
        "entity": {"id": page["id"], "type": "page"},
        "data": {"parent": page.get("parent", {}), "updated_properties": list(page.get("properties", {}))},
    }


def _salesforce(operation: Operation, record: dict[str, Any], now: float) -> dict[str, Any]:
    fields = {k: v for k, v in record.items() if k not in ("attributes", "Id", "IsDeleted", "SystemModstamp")}
    sobject = "Account" if str(record["Id"]).startswith("001") else "Contact"
    header = {
        "entityName": sobject,
        "recordIds": [record["Id"]],
        "changeType": _VERBS["salesforce"][operation],
        "changeOrigin": "com/salesforce/api/rest/66.0",
        "transactionKey": str(uuid.uuid4()),
        "sequenceNumber": 1,
        "commitTimestamp": int(now * 1000),
        "commitUser": "005SB0000000001AAA",
        "changedFields": [] if operation is Operation.DELETE else list(fields),
        "nulledFields": [],
    }
    return {"ChangeEventHeader": header, **({} if operation is Operation.DELETE else fields)}


def _google(operation: Operation, event: dict[str, Any], now: float) -> dict[str, Any]:
    verb = _VERBS["google"][operation]
    attributes = {
        "entityType": "event",
        "entityId": event["id"],
        "operation": operation.value,
        "eventType": f"calendar.event.{verb}",
        "timestamp": _iso(now),
    }
    return {
        "message": {
            "data": base64.b64encode(json.dumps(event).encode()).decode(),
            "attributes": attributes,
            "messageId": str(int(now * 1000)),
            "publishTime": _iso(now),
        },
        "subscription": "projects/castiel-sandbox/subscriptions/calendar-events",
    }
