"""Webhook registrations: stored in the ``webhooks`` container, looked up through a short in-process cache.

The receiver looks a registration up on every delivery, by id alone (the URL carries no tenant), so lookups are a
cross-partition query; the cache (5-minute TTL) keeps that off the hot path. A removal or change made through this
object drops its entry at once. One made elsewhere (the CLI, another instance of the app) is seen within
``REVALIDATE_SECONDS``: an entry is served only while it was confirmed against the store less than that long ago,
else it is read again. Every half of that, a lookup starts a background check of every cached registration, one
query for all of them, that confirms the unchanged entries and drops the ones removed or changed since — so under
steady traffic lookups never wait, and after a quiet spell the first one reads its registration afresh. The store is
the only thing every process shares in every deployment (the embedded Redis is private to ``castiel serve``), so it is
what is asked.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from castiel.clock import Clock, system_clock
from castiel.errors import CastielError, NotFound, RetryableError
from castiel.models import WebhookRegistration
from castiel.ports import DocumentStore, Filter, Query
from castiel.telemetry import log_event

CACHE_TTL_SECONDS = 300.0
# Absences are cached briefly: long enough to blunt a flood of unknown ids, short enough that a registration
# added by the CLI (another process) is served within seconds.
ABSENT_TTL_SECONDS = 5.0
REVALIDATE_SECONDS = 10.0
_CHECK_EVERY_SECONDS = REVALIDATE_SECONDS / 2  # a background check confirms entries before they need a read
_REVALIDATE_CHUNK = 100  # ids per query


@dataclass(slots=True)
class _Cached:
    registration: WebhookRegistration | None
    expires_at: float
    confirmed_at: float
    """When the store last showed this entry as it is."""


class WebhookRegistrations:
    """Create, find, list and remove registrations."""

    def __init__(self, store: DocumentStore, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._revalidate_at = clock() + _CHECK_EVERY_SECONDS
        self._revalidation: asyncio.Task[None] | None = None

    async def find(self, registration_id: str) -> WebhookRegistration | None:
        """The registration with this id, or None; answers from the cache when fresh."""
        now = self._clock()
        if now >= self._revalidate_at:
            self._start_revalidation(now)
        cached = self._cache.get(registration_id)
        live = cached is not None and cached.expires_at > now
        if cached is not None and live and now - cached.confirmed_at < REVALIDATE_SECONDS:
            return cached.registration
        try:
            page = await self._store.query(
                WebhookRegistration.container, Query(filters=(Filter("id", "==", registration_id),), limit=1)
            )
        except RetryableError:
            if cached is not None and live:
                return cached.registration  # the store is out of reach: the last state it showed, until the TTL
            raise
        found = WebhookRegistration.model_validate(page.items[0]) if page.items else None
        ttl = CACHE_TTL_SECONDS if found is not None else ABSENT_TTL_SECONDS
        self._cache[registration_id] = _Cached(found, now + ttl, now)
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

    def forget(self, registration_id: str) -> None:
        """Drop a cached registration that was written around this object (a credential rotation re-saves the
        registrations it signs), so the next lookup reads the store."""
        self._cache.pop(registration_id, None)

    async def sharing_secret(self, secret_name: str, *, other_than: str) -> list[str]:
        """Up to ten ids of the registrations other than ``other_than`` whose secret is ``secret_name``: in stores
        from before each registration owned its secret, a connection's registrations shared one."""
        page = await self._store.query(
            WebhookRegistration.container,
            Query(filters=(Filter("secretName", "==", secret_name), Filter("id", "!=", other_than)), limit=10),
        )
        return sorted(str(doc["id"]) for doc in page.items)

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

    async def drain(self) -> None:
        """Wait for a background check still running (at shutdown; in tests)."""
        if self._revalidation is not None:
            await self._revalidation

    def _start_revalidation(self, now: float) -> None:
        self._revalidate_at = now + _CHECK_EVERY_SECONDS
        if self._revalidation is not None and not self._revalidation.done():
            return
        checked = {
            key: (entry, entry.registration.etag)
            for key, entry in self._cache.items()
            if entry.registration is not None
        }
        if checked:
            self._revalidation = asyncio.get_running_loop().create_task(self._revalidate(checked, now))

    async def _revalidate(self, checked: dict[str, tuple[_Cached, str | None]], started: float) -> None:
        """Drop the entries whose registration was removed or changed (another etag) in the store since cached;
        the others are confirmed as of ``started``."""
        ids = list(checked)
        current: dict[str, object] = {}
        try:
            for start in range(0, len(ids), _REVALIDATE_CHUNK):
                chunk = tuple(ids[start : start + _REVALIDATE_CHUNK])
                page = await self._store.query(
                    WebhookRegistration.container, Query(filters=(Filter("id", "in", chunk),), limit=len(chunk))
                )
                current.update((doc["id"], doc.get("_etag")) for doc in page.items)
        except CastielError as exc:
            # The entries stay until their TTL; the next check tries again.
            log_event("webhook.registrations_check_failed", error=str(exc))
            return
        for key, (entry, etag) in checked.items():
            # Only the entry that was checked: one cached since then is newer than this answer.
            if self._cache.get(key) is not entry:
                continue
            if current.get(key) != etag:
                del self._cache[key]
            else:
                entry.confirmed_at = max(entry.confirmed_at, started)
