"""Redis clients that fail fast: every caller of Redis in Castiel has a fallback (the limiter's local window, the
webhook ledger's store), so a dead Redis must cost a short timeout, not redis-py's default retries with backoff
(seconds per call, longer than Slack's 3-second answer limit)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def connect(url: str, *, timeout_seconds: float = 0.5, retries: int = 0) -> Redis:
    """A client on ``url`` that gives up after ``timeout_seconds`` per attempt and ``retries`` immediate retries."""
    return Redis.from_url(
        url,
        retry=Retry(NoBackoff(), retries),
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
    )
