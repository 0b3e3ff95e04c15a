"""Credential metadata (values live only in the secret store) and the audit of every token refresh
(``credentials``, ``token-refresh-audit``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, computed_field

from castiel.models.base import TenantDocument, UtcDateTime, WireModel
from castiel.models.enums import Provider


class CredentialStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"


class RotationPolicy(WireModel):
    """When a credential's value must be replaced, and how early to warn (DESIGN §8)."""

    interval_days: int | None = Field(default=None, ge=1)
    """Replace the value this many days after it was set (None: no fixed rotation)."""
    warn_before_days: int = Field(default=14, ge=0)
    """Warn this many days before an expiry or rotation deadline that a refresh cannot meet."""
    refresh_idle_days: int | None = Field(default=None, ge=1)
    """The provider drops a refresh token unused this long (a Slack or Salesforce policy): refresh before then."""


class CredentialMetadata(TenantDocument):
    """Credential metadata only; the value lives in the secret store under ``secret_name`` at ``secret_version``.

    ``version`` rises with every new value; ``fence`` is the lock token of the refresh that wrote it (a refresh
    holding an older token may not overwrite it). ``due_at`` is derived: when the token refresher must next act —
    refresh it, or warn that a deadline is near.
    """

    container: ClassVar[str] = "credentials"

    connection_id: str
    provider: Provider
    credential_type: str
    secret_name: str
    secret_version: str | None = None
    previous_secret_version: str | None = None
    """The version ``secret_version`` replaced: a rotated webhook secret keeps verifying for the rotation grace."""
    version: int = Field(default=1, ge=1)
    fence: int = Field(default=0, ge=0)
    status: CredentialStatus = CredentialStatus.ACTIVE
    status_reason: str | None = None
    scopes: list[str] = Field(default_factory=list)
    refreshable: bool = False
    expires_at: UtcDateTime | None = None
    refresh_token_expires_at: UtcDateTime | None = None
    instance_url: str | None = None
    rotation: RotationPolicy = Field(default_factory=RotationPolicy)
    rotated_at: UtcDateTime | None = None
    last_refreshed_at: UtcDateTime | None = None
    warned_for: UtcDateTime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def due_at(self) -> UtcDateTime | None:
        """When the refresher must next act; stored so that its selection is one range query (``dueAt <= cutoff``)."""
        return min((at for at in (self.refresh_at(), self.warn_at()) if at is not None), default=None)

    def refresh_at(self) -> datetime | None:
        """When the token must be refreshed: its expiry, or the idle limit of its refresh token if sooner."""
        if not self.refreshable:
            return None
        idle_limit = None
        last_used = self.last_refreshed_at or self.rotated_at
        if self.rotation.refresh_idle_days is not None and last_used is not None:
            idle_limit = last_used + timedelta(days=self.rotation.refresh_idle_days)
        candidates = (self.expires_at, self.refresh_token_expires_at, idle_limit)
        return min((at for at in candidates if at is not None), default=None)

    def deadline(self) -> datetime | None:
        """The date a person must replace the value by: a non-refreshable expiry or the rotation interval."""
        rotation_due = None
        if self.rotation.interval_days is not None and self.rotated_at is not None:
            rotation_due = self.rotated_at + timedelta(days=self.rotation.interval_days)
        expiry = None if self.refreshable else self.expires_at
        return min((at for at in (expiry, rotation_due) if at is not None), default=None)

    def warn_at(self) -> datetime | None:
        """When to warn about ``deadline``; None once warned about this deadline."""
        deadline = self.deadline()
        if deadline is None or deadline == self.warned_for:
            return None
        return deadline - timedelta(days=self.rotation.warn_before_days)


class RefreshOutcome(StrEnum):
    REFRESHED = "refreshed"
    ALREADY_FRESH = "already_fresh"
    """Another holder of the lock refreshed it first; its token is used."""
    NEEDS_REAUTH = "needs_reauth"
    FAILED = "failed"
    WARNED = "warned"


class TokenRefreshAudit(TenantDocument):
    """One token refresh attempt (or expiry warning) and its outcome; never a secret value."""

    container: ClassVar[str] = "token-refresh-audit"

    credential_id: str
    connection_id: str
    outcome: RefreshOutcome
    trigger: str
    error: str | None = None
    attempted_at: UtcDateTime
    version: int | None = None
    new_expires_at: UtcDateTime | None = None
