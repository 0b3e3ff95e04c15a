"""When the token refresher must next act on a credential (``dueAt``): pure over its metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from castiel.models import CredentialMetadata, Provider, RotationPolicy

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def metadata(**fields: Any) -> CredentialMetadata:
    base: dict[str, Any] = {
        "id": "c-1",
        "tenant_id": "t",
        "connection_id": "conn",
        "provider": Provider.GITHUB,
        "credential_type": "oauth2_authorization_code",
        "secret_name": "t--c-1--x",
    }
    return CredentialMetadata(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "due"),
    [
        ({"refreshable": True, "expires_at": NOW + DAY}, NOW + DAY),
        ({"refreshable": False, "expires_at": NOW + DAY}, NOW + DAY - 14 * DAY),  # warn, 14 days ahead
        ({"refreshable": True}, None),  # Salesforce: expiry unknown, the 401 path refreshes
        (
            {"refreshable": True, "last_refreshed_at": NOW, "rotation": RotationPolicy(refresh_idle_days=30)},
            NOW + 30 * DAY,  # keep an idle-expiring refresh token alive
        ),
        (
            {"refreshable": True, "expires_at": NOW + 40 * DAY, "refresh_token_expires_at": NOW + 20 * DAY},
            NOW + 20 * DAY,
        ),
        (
            {
                "refreshable": True,
                "expires_at": NOW + 40 * DAY,
                "rotated_at": NOW,
                "rotation": RotationPolicy(interval_days=30, warn_before_days=5),
            },
            NOW + 25 * DAY,  # the rotation warning comes before the token's expiry
        ),
        (
            {"refreshable": False, "expires_at": NOW + DAY, "warned_for": NOW + DAY},
            None,  # warned about this deadline already
        ),
        (
            {"refreshable": False, "expires_at": NOW + 60 * DAY, "warned_for": NOW + DAY},
            NOW + 46 * DAY,  # a new deadline (rotated value) is warned about again
        ),
        ({"refreshable": False}, None),
    ],
)
def test_due_at(fields: dict[str, Any], due: datetime | None) -> None:
    credential = metadata(**fields)
    assert credential.due_at == due
    stored = credential.to_doc()
    assert ("dueAt" in stored) is (due is not None)
    assert CredentialMetadata.model_validate(stored).due_at == due


def test_the_deadline_of_a_refreshable_credential_ignores_its_access_token_expiry() -> None:
    assert metadata(refreshable=True, expires_at=NOW + DAY).deadline() is None
