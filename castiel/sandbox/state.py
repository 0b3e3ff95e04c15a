"""The sandbox: the five provider stand-ins, the stand-in OAuth provider, and what tests and operators change.

``Sandbox`` is the one object behind the app. Tests drive it directly (``edit``, ``delete``, ``create``,
``faults.configure``, ``tokens``, ``pushes``); the app exposes the same under ``/_sandbox`` (``control.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from castiel.clock import Clock, system_clock
from castiel.errors import ConfigError, NotFound
from castiel.models import Operation
from castiel.sandbox.dataset import Item
from castiel.sandbox.faults import Faults
from castiel.sandbox.github import GitHubApi
from castiel.sandbox.google import GoogleApi
from castiel.sandbox.notion import NotionApi
from castiel.sandbox.oauth import OAuthSandbox
from castiel.sandbox.provider import ProviderApi, Push, Shared, TokenRules
from castiel.sandbox.salesforce import SalesforceApi
from castiel.sandbox.slack import SlackApi
from castiel.sandbox.webhooks import PushSigningKey

API_PATHS = {
    "salesforce": "/salesforce",
    "notion": "/notion",
    "slack": "/slack/api",
    "github": "/github",
    "google": "/google",
}
"""Where each stand-in serves its provider's API root, under the sandbox's URL."""

DEFAULT_RECORDS = 1000


def base_urls(root: str) -> dict[str, str]:
    """Each provider's ``baseUrl`` for a sandbox served at ``root`` (in this process or another)."""
    return {provider: root.rstrip("/") + path for provider, path in API_PATHS.items()}


ChangeListener = Callable[[str, str, Operation, dict[str, Any]], None]
"""Told ``(provider, entity type, operation, record body)`` of each change of a sandbox record."""


class Sandbox:
    """Stand-ins of the five provider APIs with ``records`` seeded records per entity type."""

    def __init__(self, *, records: int = DEFAULT_RECORDS, clock: Clock = system_clock, seed: int = 0) -> None:
        if records < 0:
            raise ConfigError(f"records must not be negative, not {records}")
        self.shared = Shared(clock, Faults(seed))
        self.oauth = OAuthSandbox()
        self.shared.tokens.issued = self._issued_tokens
        self.salesforce = SalesforceApi(self.shared, records)
        self.notion = NotionApi(self.shared, records)
        self.slack = SlackApi(self.shared, records)
        self.github = GitHubApi(self.shared, records)
        self.google = GoogleApi(self.shared, records)
        self.signing_key = PushSigningKey()
        """Signs the Google push tokens of sandbox webhooks."""
        self.providers: dict[str, ProviderApi] = {
            api.name: api for api in (self.salesforce, self.notion, self.slack, self.github, self.google)
        }
        self.instance = uuid.uuid4().hex
        """Tells this sandbox from any earlier one: each starts afresh, so data seeded against another is stale."""
        self.listeners: list[ChangeListener] = []
        """Told of every change of a record, whoever made it (an API write, a control): the webhooks' source."""
        self._watch()

    @property
    def faults(self) -> Faults:
        """The fault plans."""
        return self.shared.faults

    @property
    def tokens(self) -> TokenRules:
        """Which tokens the stand-ins accept."""
        return self.shared.tokens

    @property
    def pushes(self) -> list[Push]:
        """Every write applied, in order."""
        return self.shared.pushes

    def _issued_tokens(self, provider: str) -> set[str]:
        return {grant.access_token for grant in self.oauth.grants.values() if grant.provider == provider}

    def reset(self) -> None:
        """Every stand-in back to its seeded records; no faults, pushes or token rules."""
        self.shared.faults.clear()
        self.shared.pushes.clear()
        self.shared.tokens.strict = False
        self.shared.tokens.accepted.clear()
        self.shared.tokens.revoked.clear()
        for api in self.providers.values():
            api.reset()
            api.requests = 0
        self._watch()

    def _watch(self) -> None:
        for api in self.providers.values():
            for entity_type, dataset in api.datasets.items():
                dataset.on_put = partial(self._changed, api.name, entity_type)

    def _changed(self, provider: str, entity_type: str, item: Item, existed: bool) -> None:
        operation = Operation.DELETE if item.deleted else Operation.UPDATE if existed else Operation.CREATE
        for listener in self.listeners:
            listener(provider, entity_type, operation, item.body)

    def base_urls(self, root: str) -> dict[str, str]:
        """Each provider's ``baseUrl`` for a sandbox served at ``root``."""
        return base_urls(root)

    def api(self, provider: str) -> ProviderApi:
        """A stand-in by provider name; ``NotFound`` for another name."""
        try:
            return self.providers[provider]
        except KeyError:
            raise NotFound(f"no sandbox provider {provider!r}; there are: {', '.join(self.providers)}") from None

    def edit(
        self, provider: str, *, ids: list[str] | None = None, count: int = 0, entity_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Edit the records ``ids`` (or the first ``count``) as a person would; their new bodies."""
        api = self.api(provider)
        chosen = ids or api.ids(self._entity(api, entity_type), count)
        try:
            return [api.edit(item_id) for item_id in chosen]
        except KeyError as exc:
            raise NotFound(f"sandbox {provider} has no record {exc.args[0]!r}") from None

    def delete(
        self, provider: str, *, ids: list[str] | None = None, count: int = 0, entity_type: str | None = None
    ) -> list[str]:
        """Delete the records ``ids`` (or the first ``count``); their ids."""
        api = self.api(provider)
        chosen = ids or api.ids(self._entity(api, entity_type), count)
        try:
            for item_id in chosen:
                api.delete(item_id)
        except KeyError as exc:
            raise NotFound(f"sandbox {provider} has no record {exc.args[0]!r}") from None
        return chosen

    def create(self, provider: str, *, count: int = 1) -> list[dict[str, Any]]:
        """Create ``count`` records; their bodies."""
        api = self.api(provider)
        return [api.create() for _ in range(count)]

    @staticmethod
    def _entity(api: ProviderApi, entity_type: str | None) -> str:
        if entity_type is None:
            return next(iter(api.datasets))
        if entity_type not in api.datasets:
            raise NotFound(f"sandbox {api.name} has no {entity_type!r}; it has: {', '.join(api.datasets)}")
        return entity_type

    def summary(self, root: str) -> dict[str, Any]:
        """Base URLs, record counts and request counts."""
        return {
            "baseUrls": self.base_urls(root),
            "records": {
                name: {entity: len(dataset) for entity, dataset in api.datasets.items()}
                for name, api in self.providers.items()
            },
            "requests": {name: api.requests for name, api in self.providers.items()},
            "pushes": len(self.pushes),
        }
