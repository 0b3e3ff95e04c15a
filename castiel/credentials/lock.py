"""One refresh of a credential at a time, across every process sharing the Redis — the Functions instances, the dev
host and every CLI command on the same data directory.

The lock is a Redis key set ``NX`` with an expiry longer than a refresh (``LOCK_TTL_SECONDS``), taken together with a
*fencing token* in one Lua call (``lock_acquire.lua``): a counter per credential that only rises. The refresh stores
its token with the credential it writes, and a writer whose token is lower than the stored one — its lock expired
while it was stuck, and a later holder has written since — is refused. Release is compare-and-delete, so a holder
whose lock expired never frees the next holder's lock.

With Redis unreachable, a per-process ``asyncio.Lock`` stands in, with a warning log line: refreshes still happen
one at a time within this process; across processes only the store's etag-conditional write keeps them apart.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from castiel.errors import LockLost, RetryableError
from castiel.models import stable_id
from castiel.redis_script import RedisScript
from castiel.telemetry import log_event, new_id

LOCK_TTL_SECONDS = 90.0
"""The lock's expiry: a token request's 30 s budget, the store writes, and room to spare."""
LOCK_WAIT_SECONDS = 120.0
"""How long a second refresher waits for the lock before giving up with ``LockLost`` (retryable)."""
REDIS_TIMEOUT_SECONDS = 1.0
_POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Lease:
    """A held refresh lock. ``fence`` is its fencing token; None under the local fallback (no global order)."""

    fence: int | None


class RefreshLocks:
    """Refresh locks per credential, on Redis when it answers, per process when it does not."""

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: float = LOCK_TTL_SECONDS,
        wait_seconds: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self._ttl_ms = int(ttl_seconds * 1000)
        self._wait_seconds = wait_seconds
        self._acquire, self._release = (
            RedisScript(
                redis,
                "castiel.credentials",
                name,
                purpose="the credential refresh lock",
                timeout_seconds=REDIS_TIMEOUT_SECONDS,
            )
            for name in ("lock_acquire.lua", "lock_release.lua")
        )
        self._local: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, tenant_id: str, credential_id: str, *, floor: int) -> AsyncIterator[Lease]:
        """Hold the refresh lock of one credential; ``floor`` is the highest fencing token stored with it."""
        keys = _keys(tenant_id, credential_id)
        owner = new_id()
        fence = await self._take(keys, owner, floor, credential_id)
        if fence is None:
            async with self._local.setdefault(keys[0], asyncio.Lock()):
                yield Lease(fence=None)
            return
        try:
            yield Lease(fence=fence)
        finally:
            await self._give_back(keys, owner, credential_id)

    async def _take(self, keys: list[str], owner: str, floor: int, credential_id: str) -> int | None:
        """The fencing token once the lock is ours; None when Redis is unreachable (use the local lock)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        while True:
            try:
                fence = int(await self._acquire.run(keys, [owner, self._ttl_ms, floor]))
            except RetryableError as exc:
                log_event(
                    "credentials.lock_local",
                    level=logging.WARNING,
                    credential_id=credential_id,
                    reason=f"Redis unreachable, refreshing under a lock of this process only: {exc}",
                )
                return None
            if fence:
                return fence
            if loop.time() >= deadline:
                raise LockLost(
                    f"credential {credential_id} stayed locked by another refresh for {self._wait_seconds:.0f} s"
                )
            await asyncio.sleep(_POLL_SECONDS * (0.5 + random.random()))

    async def _give_back(self, keys: list[str], owner: str, credential_id: str) -> None:
        try:
            await self._release.run(keys[:1], [owner])
        except RetryableError as exc:
            # Harmless: the lock expires on its own.
            log_event("credentials.lock_release_failed", credential_id=credential_id, error=str(exc))


def _keys(tenant_id: str, credential_id: str) -> list[str]:
    # One hash tag for both keys: the script touches them together (one slot on a cluster).
    tag = stable_id("credential-lock", tenant_id, credential_id)[:20]
    return [f"castiel:credential:{{{tag}}}:lock", f"castiel:credential:{{{tag}}}:fence"]
