"""Redis clients that fail fast, signed in as ``REDIS_AUTH`` says.

Every caller of Redis in Castiel has a fallback (the limiter's local window, the webhook ledger's store), so a dead
Redis must cost a short timeout, not redis-py's default retries with backoff (seconds per call, longer than Slack's
3-second answer limit).

With ``REDIS_AUTH=entra_id`` (Azure Managed Redis, which takes no access key) connections authenticate with a
Microsoft Entra token of the managed identity through ``redis-entraid``: its credential provider fetches the token
(``DefaultAzureCredential``, scope ``https://redis.azure.com/.default``), sends ``AUTH <object id> <token>`` on every
new connection, and renews the token before it expires, re-authenticating the open connections. That provider needs
a synchronous credential, so it cannot share the process's async one; the identity, and its token cache in the
platform, are the same.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.credentials import CredentialProvider
from redis.retry import Retry as SyncRetry

from castiel.settings import Settings

REDIS_SCOPE = "https://redis.azure.com/.default"
"""The Entra scope of Azure Managed Redis (and Azure Cache for Redis) data access."""


def credential_provider(settings: Settings) -> CredentialProvider | None:
    """The Entra ID credential provider when ``REDIS_AUTH=entra_id``, else None (``REDIS_URL`` carries any
    password). One per process: every client built with it shares its token."""
    if settings.redis_auth != "entra_id":
        return None
    from redis_entraid.cred_provider import create_from_default_azure_credential

    provider: CredentialProvider = create_from_default_azure_credential(scopes=(REDIS_SCOPE,))
    return provider


def connect(
    url: str, *, timeout_seconds: float = 0.5, retries: int = 0, credentials: CredentialProvider | None = None
) -> Redis:
    """A client on ``url`` that gives up after ``timeout_seconds`` per attempt and ``retries`` immediate retries,
    signing in with ``credentials`` when given."""
    return Redis.from_url(
        url,
        retry=Retry(NoBackoff(), retries),
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        credential_provider=credentials,
    )


def unreachable(url: str, *, timeout_seconds: float = 1.0, token_auth: bool = False) -> str | None:
    """Why the server at ``url`` does not answer PING (one blocking attempt), or None when it does.

    ``token_auth``: the clients sign in with an Entra token (``REDIS_AUTH=entra_id``), which this blocking check does
    not fetch (the token provider renews on the event loop): a server asking to be signed in has answered.
    """
    client = redis.Redis.from_url(
        url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, retry=SyncRetry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        return None if token_auth else f"{type(exc).__name__}: {exc}"
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
