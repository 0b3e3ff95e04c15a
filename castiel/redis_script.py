"""The edge with redis-py for the services that talk to Redis directly (the rate limiter, the webhook ledger, the
credential lock): Lua scripts run by ``EVALSHA`` in one round trip (loaded again on ``NOSCRIPT``), the one table that
turns redis-py's errors into ``castiel.errors``, and the hash tag that keeps a script's keys in one cluster slot.

Every Redis failure is a ``RetryableError`` naming what Redis was needed for and why it failed (unreachable, slow,
credentials refused, a command refused): each caller has a fallback for Redis being away (the limiter's local window,
the ledger's store, the lock's process-local lock), and a refused credential or command calls for the same — work
slowed, not lost — while the reason reaches the operator's alert.

A script may only touch keys of one hash slot on a clustered cache (Azure Managed Redis refuses a Lua call across
slots with ``CROSSSLOT``), so every key a script is given carries a hash tag, ``{...}``, and calls are batched by tag
(``hash_tag``): the part of a key Redis hashes for its slot.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoPermissionError,
    NoScriptError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from castiel.error_table import ErrorTable, Rule
from castiel.errors import RetryableError

_CREDENTIALS = "refused the credentials (REDIS_URL's password, or the identity's access policy: REDIS_AUTH=entra_id)"

REDIS_ERRORS = ErrorTable(
    "Redis",
    [
        Rule((RedisError,), RetryableError, "failed"),
        Rule((RedisConnectionError, OSError), RetryableError, "unreachable"),
        Rule((RedisTimeoutError, TimeoutError), RetryableError, "did not answer in time"),
        Rule((AuthenticationError, AuthorizationError), RetryableError, _CREDENTIALS),
        Rule((NoPermissionError,), RetryableError, _CREDENTIALS),
        Rule((ResponseError,), RetryableError, "refused the command"),
    ],
)
"""What each redis-py failure becomes: always retryable (see the module docstring), with its own reason."""


@contextmanager
def redis_errors(purpose: str) -> Iterator[None]:
    """Raise a ``RetryableError`` naming ``purpose`` for any Redis failure inside."""
    with REDIS_ERRORS.translating(purpose):
        yield


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes: the text inside its first ``{...}`` when not empty, else the key."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


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
        with redis_errors(self._purpose):
            async with asyncio.timeout(self._timeout):
                try:
                    return await self._redis.evalsha(self._sha, len(keys), *keys, *args)
                except NoScriptError:
                    self._sha = await self._redis.script_load(self._source)
                    return await self._redis.evalsha(self._sha, len(keys), *keys, *args)
