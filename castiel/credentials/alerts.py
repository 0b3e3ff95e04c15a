"""What the credentials layer tells an operator: a grant that needs re-authorisation, a deadline coming up.

Alerts go to an ``AlertCallback`` so tests can count them; the default, ``log_credential_alert``, writes one
structured warning (the refresher counts dead grants as ``refresher_failed``). A dead grant alerts once, on its
transition to ``needs_reauth`` — not on every refresher run after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from castiel.telemetry import log_event


class CredentialAlertKind(StrEnum):
    NEEDS_REAUTH = "needs_reauth"
    DEADLINE = "deadline"
    """A value a person must replace (an API key's or certificate's expiry, a rotation interval) is due soon."""


@dataclass(frozen=True, slots=True)
class CredentialAlert:
    """One alert about one credential; ``detail`` says what happened and what to do (never a secret)."""

    kind: CredentialAlertKind
    tenant_id: str
    credential_id: str
    detail: str
    connection_ids: tuple[str, ...] = ()


AlertCallback = Callable[[CredentialAlert], None]


def log_credential_alert(alert: CredentialAlert) -> None:
    """The default callback: a structured warning."""
    log_event(
        "credentials.alert",
        level=logging.WARNING,
        kind=alert.kind.value,
        tenant_id=alert.tenant_id,
        credential_id=alert.credential_id,
        connections=",".join(alert.connection_ids),
        detail=alert.detail,
    )
