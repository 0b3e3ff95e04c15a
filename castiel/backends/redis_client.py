"""Redis clients that fail fast: every caller of Redis in Castiel has a fallback (the limiter's local window, the
webhook ledger's store), so a dead Redis must cost a short timeout, not redis-py's default retries with backoff
(seconds per call, longer than Slack's 3-second answer limit)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.retry import Retry as SyncRetry


def connect(url: str, *, timeout_seconds: float = 0.5, retries: int = 0) -> Redis:
    """A client on ``url`` that gives up after ``timeout_seconds`` per attempt and ``retries`` immediate retries."""
    return Redis.from_url(
        url,
        retry=Retry(NoBackoff(), retries),
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
    )


def unreachable(url: str, *, timeout_seconds: float = 1.0) -> str | None:
    """Why the server at ``url`` does not answer PING (one blocking attempt), or None when it does."""
    client = redis.Redis.from_url(
        url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, retry=SyncRetry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def redacted(url: str) -> str:
    """``url`` without its user name and password, for log lines and messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
