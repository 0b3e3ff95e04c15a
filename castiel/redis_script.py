"""Lua scripts shipped in the package, each run by ``EVALSHA`` in one round trip and loaded again on ``NOSCRIPT``.

The boundary with redis-py for the services that talk to Redis directly (the rate limiter, the webhook ledger): no
answer within the timeout, or any Redis or socket error, is a ``RetryableError`` naming what Redis was needed for.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from castiel.errors import RetryableError

REDIS_FAILURES = (RedisError, OSError, TimeoutError)
"""What redis-py raises when Redis is unreachable, slow or refuses a command."""


class RedisScript:
    """The Lua script ``name`` of ``package``, run with ``EVALSHA``."""

    def __init__(self, redis: Redis, package: str, name: str, *, purpose: str, timeout_seconds: float) -> None:
        self._redis = redis
        self._source = (files(package) / name).read_text(encoding="utf-8")
        self._sha = hashlib.sha1(self._source.encode(), usedforsecurity=False).hexdigest()
        self._purpose = purpose
        self._timeout = timeout_seconds

    async def run(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """The script's reply; ``RetryableError`` when Redis does not give one within the timeout."""
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    return await self._redis.evalsha(self._sha, len(keys), *keys, *args)
                except NoScriptError:
                    self._sha = await self._redis.script_load(self._source)
                    return await self._redis.evalsha(self._sha, len(keys), *keys, *args)
        except REDIS_FAILURES as exc:
            raise RetryableError(f"Redis unreachable for {self._purpose}: {exc!r}") from exc
