"""Webhook registrations: stored in the ``webhooks`` container, looked up through a short in-process cache.

The receiver looks a registration up on every delivery, by id alone (the URL carries no tenant), so lookups are a
cross-partition query; the cache (5-minute TTL, dropped on removal or change here) keeps that off the hot path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from castiel.clock import Clock, system_clock
from castiel.errors import NotFound
from castiel.models import WebhookRegistration
from castiel.ports import DocumentStore, Filter, Query

CACHE_TTL_SECONDS = 300.0
# Absences are cached briefly: long enough to blunt a flood of unknown ids, short enough that a registration
# added by the CLI (another process) is served within seconds.
ABSENT_TTL_SECONDS = 5.0


@dataclass(slots=True)
class _Cached:
    registration: WebhookRegistration | None
    expires_at: float


class WebhookRegistrations:
    """Create, find, list and remove registrations."""

    def __init__(self, store: DocumentStore, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._clock = clock
        self._cache: dict[str, _Cached] = {}

    async def find(self, registration_id: str) -> WebhookRegistration | None:
        """The registration with this id, or None; answers from the cache when fresh."""
        now = self._clock()
        cached = self._cache.get(registration_id)
        if cached is not None and cached.expires_at > now:
            return cached.registration
        page = await self._store.query(
            WebhookRegistration.container, Query(filters=(Filter("id", "==", registration_id),), limit=1)
        )
        found = WebhookRegistration.model_validate(page.items[0]) if page.items else None
        ttl = CACHE_TTL_SECONDS if found is not None else ABSENT_TTL_SECONDS
        self._cache[registration_id] = _Cached(found, now + ttl)
        return found

    async def get(self, registration_id: str) -> WebhookRegistration:
        """Like ``find`` but raises ``NotFound``."""
        found = await self.find(registration_id)
        if found is None:
            raise NotFound(f"webhook registration {registration_id} does not exist")
        return found

    async def add(self, registration: WebhookRegistration) -> WebhookRegistration:
        """Store a new registration (``id`` is generated when empty)."""
        if not registration.id:
            registration = registration.model_copy(update={"id": uuid.uuid4().hex})
        stored = WebhookRegistration.model_validate(
            await self._store.create(WebhookRegistration.container, registration.to_doc())
        )
        self._cache.pop(stored.id, None)
        return stored

    async def save(self, registration: WebhookRegistration) -> WebhookRegistration:
        """Replace a registration under its etag."""
        stored = WebhookRegistration.model_validate(
            await self._store.replace(WebhookRegistration.container, registration.to_doc(), if_match=registration.etag)
        )
        self._cache.pop(stored.id, None)
        return stored

    async def list(self, tenant_id: str | None = None) -> list[WebhookRegistration]:
        """Every registration, or a tenant's."""
        page = await self._store.query(
            WebhookRegistration.container, Query(partition_key=tenant_id, order_by=(("id", "asc"),))
        )
        return [WebhookRegistration.model_validate(doc) for doc in page.items]

    async def remove(self, registration_id: str) -> None:
        """Delete a registration; the cache forgets it at once."""
        registration = await self.get(registration_id)
        await self._store.delete(WebhookRegistration.container, registration.id, registration.tenant_id)
        self._cache.pop(registration_id, None)
