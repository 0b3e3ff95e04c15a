"""A Key Vault in memory, answering the real ``azure.keyvault.secrets.aio.SecretClient`` over its transport seam.

It speaks the secrets REST API as documented (learn.microsoft.com/rest/api/keyvault/secrets): ``PUT
/secrets/{name}`` adds a version, ``GET /secrets/{name}/{version}`` (an empty version is the latest), ``GET
/secrets/{name}/versions`` pages with ``maxresults`` and ``nextLink`` and carries no values, ``DELETE
/secrets/{name}`` soft-deletes every version into ``/deletedsecrets/{name}``, where ``DELETE`` purges (refused with
403 under purge protection), and a name held by a deleted secret answers 409 ``ObjectIsDeletedButRecoverable``.
Names compare case-insensitively. Errors are ``{"error": {"code", "message", "innererror"}}``. Every request must
carry the bearer token: one without is answered 401 with the ``WWW-Authenticate`` challenge the SDK's challenge
policy expects, as the service does.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.contract.azure_wire import AzureWire, request_body, respond

VAULT_URL = "https://castiel-test.vault.azure.net"
TOKEN = "entra-token"
CHALLENGE = 'Bearer authorization="https://login.microsoftonline.com/tenant-id", resource="https://vault.azure.net"'

_SECRET = re.compile(r"/secrets/([^/]+)(?:/([^/]*))?")
_DELETED = re.compile(r"/deletedsecrets/([^/]+)")


class VaultFault(Exception):
    """An error answer in the service's shape."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.inner = status, code, inner


@dataclass
class Secret:
    """Every version of one secret, oldest first."""

    name: str
    versions: list[dict[str, Any]] = field(default_factory=list)
    deleted_at: int | None = None


class KeyVault(AzureWire):
    """The fake vault; ``clock`` (seconds) stamps versions; ``purge_protection`` refuses purges."""

    def __init__(self, clock: Callable[[], float] = lambda: 1_700_000_000.0, *, purge_protection: bool = False) -> None:
        super().__init__()
        self.clock = clock
        self.recovery_level = "Recoverable" if purge_protection else "Recoverable+Purgeable"
        self.secrets: dict[str, Secret] = {}
        self.deleted: dict[str, Secret] = {}
        self.slept: list[float] = []
        self._versions = itertools.count(1)

    async def sleep(self, duration: float) -> None:
        """azure-core's retry policy waits through the transport: note the wait instead of taking it."""
        self.slept.append(duration)

    def answer(self, request: Any) -> Any:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            body = {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}
            return respond(request, 401, body, {"WWW-Authenticate": CHALLENGE})
        url = urlsplit(request.url)
        try:
            status, body = self._route(request.method, url.path.rstrip("/"), parse_qs(url.query), request)
        except VaultFault as fault:
            error: dict[str, Any] = {"code": fault.code, "message": str(fault)}
            if fault.inner:
                error["innererror"] = {"code": fault.inner}
            status, body = fault.status, {"error": error}
        return respond(request, status, body, {"x-ms-request-id": "fake", "x-ms-keyvault-service-version": "1.9"})

    def _route(self, method: str, path: str, query: dict[str, list[str]], request: Any) -> tuple[int, Any]:
        if match := _DELETED.fullmatch(path):
            return self._deleted_secret(method, match[1])
        match = _SECRET.fullmatch(path)
        if match is None:
            raise VaultFault(400, "BadParameter", f"the fake vault does not serve {method} {path}")
        name, rest = match[1], match[2]
        if method == "PUT" and rest is None:
            return 200, self._set(name, orjson.loads(request_body(request)))
        if method == "DELETE" and rest is None:
            return 200, self._delete(name)
        if method == "GET" and rest == "versions":
            return 200, self._list_versions(name, query)
        if method == "GET":
            return 200, self._get(name, rest or "")
        raise VaultFault(405, "MethodNotAllowed", f"{method} {path}")

    def _set(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name.lower() in self.deleted:
            message = f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused"
            raise VaultFault(409, "Conflict", message, inner="ObjectIsDeletedButRecoverable")
        secret = self.secrets.setdefault(name.lower(), Secret(name))
        now = int(self.clock())
        expiry = {name: value for name, value in body.get("attributes", {}).items() if name == "exp"}
        attributes = {"enabled": True, "created": now, "updated": now, "recoveryLevel": self.recovery_level,
                      "recoverableDays": 90, **expiry}  # fmt: skip
        version = {
            "value": body["value"],
            "id": f"{VAULT_URL}/secrets/{secret.name}/{next(self._versions):032x}",
            "attributes": attributes,
            **({"contentType": body["contentType"]} if body.get("contentType") is not None else {}),
            **({"tags": body["tags"]} if body.get("tags") else {}),
        }
        secret.versions.append(version)
        return version

    def _secret(self, name: str) -> Secret:
        secret = self.secrets.get(name.lower())
        if secret is None or not secret.versions:
            raise VaultFault(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault.")
        return secret

    def _get(self, name: str, version: str) -> dict[str, Any]:
        secret = self._secret(name)
        if not version:
            return secret.versions[-1]
        for stored in secret.versions:
            if stored["id"].rsplit("/", 1)[1] == version:
                return stored
        raise VaultFault(404, "SecretNotFound", f"A secret with (name/id) {name}/{version} was not found.")

    def _list_versions(self, name: str, query: dict[str, list[str]]) -> dict[str, Any]:
        secret = self.secrets.get(name.lower())
        versions = [] if secret is None else secret.versions
        size = int(query.get("maxresults", ["25"])[0])
        start = int(query.get("$skiptoken", ["0"])[0])
        page = [{k: v for k, v in version.items() if k != "value"} for version in versions[start : start + size]]
        next_link = None
        if start + size < len(versions):
            next_link = (
                f"{VAULT_URL}/secrets/{name}/versions?api-version=7.6&$skiptoken={start + size}&maxresults={size}"
            )
        return {"value": page, "nextLink": next_link}

    def _delete(self, name: str) -> dict[str, Any]:
        secret = self._secret(name)
        del self.secrets[name.lower()]
        secret.deleted_at = int(self.clock())
        self.deleted[name.lower()] = secret
        return self._deleted_bundle(secret)

    def _deleted_secret(self, method: str, name: str) -> tuple[int, Any]:
        secret = self.deleted.get(name.lower())
        if secret is None:
            raise VaultFault(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        if method == "GET":
            return 200, self._deleted_bundle(secret)
        if self.recovery_level != "Recoverable+Purgeable":
            message = 'Operation "purge" is not allowed because purge protection is enabled for this vault.'
            raise VaultFault(403, "Forbidden", message)
        del self.deleted[name.lower()]
        return 204, None

    def _deleted_bundle(self, secret: Secret) -> dict[str, Any]:
        latest = {k: v for k, v in secret.versions[-1].items() if k != "value"}
        deleted_at = secret.deleted_at or 0
        recovery = {"recoveryId": f"{VAULT_URL}/deletedsecrets/{secret.name}", "deletedDate": deleted_at,
                    "scheduledPurgeDate": deleted_at + 90 * 86400}  # fmt: skip
        return {**latest, **recovery}
