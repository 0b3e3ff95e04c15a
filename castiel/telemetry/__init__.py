"""Logging and correlation ids; metrics (``metrics.py``), spans (``spans.py``) and their export (``export.py``).

Log lines are ``event key=value …`` so they read well in a terminal and parse in App Insights (the Functions host
forwards ``logging`` records as traces). The correlation id of the work in hand rides in a context variable and
is added to every line. Values that look like credentials are never passed here: secrets are ``SecretValue``s whose
repr is masked, and ``log_event`` masks any field whose name says it holds a secret.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from castiel.text import escaped

logger = logging.getLogger("castiel")

_correlation_id: ContextVar[str | None] = ContextVar("castiel_correlation_id", default=None)

_SECRET_FIELD_MARKERS = ("secret", "token", "password", "key", "authorization", "signature")


_ids = random.Random()  # seeded from os.urandom once; ids must be unique, not unguessable


def new_id() -> str:
    """A fresh 128-bit random id as 32 hex digits, cheap enough for every request.

    ``uuid4`` reads ``os.urandom`` on every call, which costs tens of microseconds on some VMs; these ids name
    log correlations and audit records, so uniqueness is all they need.
    """
    return f"{_ids.getrandbits(128):032x}"


def new_correlation_id() -> str:
    """A fresh correlation id."""
    return new_id()


def current_correlation_id() -> str | None:
    """The correlation id of the work in hand, if any."""
    return _correlation_id.get()


@contextmanager
def correlation(correlation_id: str | None) -> Iterator[str]:
    """Run a block under ``correlation_id`` (a new one when None); every log line in it carries the id."""
    value = correlation_id or new_correlation_id()
    token = _correlation_id.set(value)
    try:
        yield value
    finally:
        _correlation_id.reset(token)


def _render(value: object) -> str:
    # A value can be a provider's error text or a request's header: escaped, it cannot start a forged line.
    text = escaped(str(value))
    return f'"{text}"' if (" " in text or not text) else text


def _is_secret_field(name: str) -> bool:
    masked = _masked_fields.get(name)
    if masked is None:
        masked = _masked_fields[name] = any(marker in name.lower() for marker in _SECRET_FIELD_MARKERS)
    return masked


# Field names come from code (keyword arguments), so this stays as small as the set of names in use.
_masked_fields: dict[str, bool] = {}


def log_event(event: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Log one structured event; fields named like secrets are masked, the correlation id is added."""
    _emit(event, level, fields)


def _emit(event: str, level: int, fields: dict[str, object]) -> None:
    if not logger.isEnabledFor(level):
        return
    correlation_id = _correlation_id.get()
    if correlation_id and "correlation_id" not in fields:
        fields["correlation_id"] = correlation_id
    parts = [event]
    for name, value in fields.items():
        parts.append(f"{name}={'***' if _is_secret_field(name) else _render(value)}")
    # ``makeRecord`` + ``handle`` is ``logger.log`` without its stack walk for the caller's file and line: every line
    # comes from here, so that walk would cost each request several microseconds to name this function.
    logger.handle(logger.makeRecord(logger.name, level, __file__, 0, " ".join(parts), (), None, "log_event"))
