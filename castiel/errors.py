"""The error taxonomy, grouped by what the caller does next (DESIGN §7).

::

    CastielError
     ├── RetryableError           network, 5xx, 429, lock lost: retry later (scheduled copy, backoff)
     │    ├── RateLimited         retry after ``retry_after`` seconds exactly
     │    └── LockLost            a lease (Redis lock, queue peek-lock) was lost mid-work
     ├── PermanentError           retrying cannot fix it: dead-letter with the reason, mark the task failed
     │    ├── ConfigError         bad or missing configuration
     │    ├── InvalidMessage      a queue body or request that cannot be decoded
     │    ├── InvalidGrant        the OAuth grant is dead: mark the connection needs_reauth
     │    └── SignatureError      a webhook that does not verify
     ├── Deferred                 not a failure: postpone the work by ``retry_after`` (a queued rate-limit decision)
     ├── NotFound                 the document, secret or registration does not exist
     ├── AlreadyExists            create of an id that is already there
     └── PreconditionFailed       an etag-conditional write lost a race

Third-party errors (``azure.*``, ``redis.*``, ``httpx.*``, ``sqlite3``) are translated into these at the
backend or adapter boundary with ``raise ... from exc``; core code never catches them.
"""

from __future__ import annotations


class CastielError(Exception):
    """Root of every error Castiel raises on purpose."""


class RetryableError(CastielError):
    """A transient failure: the same work is expected to succeed later."""


class RateLimited(RetryableError):
    """A rate limit refused the work; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float, level: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, retry_after)
        self.level = level


class LockLost(RetryableError):
    """A lease on shared state was lost before the work finished."""


class PermanentError(CastielError):
    """A failure no retry can fix: dead-letter with this message as the reason."""


class ConfigError(PermanentError):
    """Configuration is invalid or incomplete; the message names the setting."""


class InvalidMessage(PermanentError):
    """An input (queue body, webhook payload) that cannot be decoded or validated."""


class InvalidGrant(PermanentError):
    """The provider rejected the refresh token or grant: the connection needs re-authorisation."""


class SignatureError(PermanentError):
    """A webhook signature or token did not verify; the message says exactly why."""


class Deferred(CastielError):
    """The work must wait ``retry_after`` seconds; re-send it then without counting a retry (never dropped)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, retry_after)


class NotFound(CastielError):
    """The addressed document, secret or registration does not exist."""


class AlreadyExists(CastielError):
    """A create collided with an existing id."""


class PreconditionFailed(CastielError):
    """An etag-conditional write or delete found a newer version."""
