"""The rotation grace of webhook secrets, and the check a new secret passes before it replaces one: plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from castiel.credentials.types import WebhookSecret
from castiel.credentials.webhook_secrets import ROTATION_GRACE, check_verifies, grace_end
from castiel.errors import ConfigError
from castiel.models import Provider, WebhookRegistration

REPLACED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (REPLACED, REPLACED + ROTATION_GRACE),
        (REPLACED + ROTATION_GRACE - SECOND, REPLACED + ROTATION_GRACE),
        (REPLACED + ROTATION_GRACE, None),
        (REPLACED + ROTATION_GRACE + SECOND, None),
        (REPLACED - SECOND, REPLACED + ROTATION_GRACE),  # another process's clock a little behind
    ],
    ids=["at-rotation", "last-second", "at-the-end", "after", "clock-behind"],
)
def test_the_previous_secret_verifies_until_the_grace_after_it_was_replaced_ends(
    now: datetime, expected: datetime | None
) -> None:
    assert grace_end(REPLACED, now) == expected


def test_a_secret_never_replaced_has_no_grace() -> None:
    assert grace_end(None, REPLACED) is None


def registration(provider: Provider, **settings: str) -> WebhookRegistration:
    return WebhookRegistration(
        id=f"reg-{provider.value}",
        tenant_id="t1",
        provider=provider,
        connection_id="c1",
        integration_id=provider.value,
        settings=settings,
    )


STANDARD_KEY = "whsec_c3RhbmRhcmQtd2ViaG9va3Mta2V5LTAxMjM0NTY3ODk="


@pytest.mark.parametrize(
    ("signed", "secret", "refusal"),
    [
        ([registration(Provider.GITHUB)], "any-string-Kp2", None),
        ([registration(Provider.STANDARD)], STANDARD_KEY, None),
        ([registration(Provider.STANDARD)], "whsec_not*base64!", "reg-standard could not verify with it"),
        (
            [registration(Provider.GITHUB), registration(Provider.SALESFORCE)],
            "whsec_not*base64!",
            "reg-salesforce could not",
        ),
        ([registration(Provider.SALESFORCE, organizationId="00D5e000000ABCDEAZ")], "s-Hw4", "without a secret"),
        ([], "whsec_not*base64!", None),
    ],
    ids=["github", "standard", "standard-not-base64", "second-of-two", "soap-takes-none", "signs-nothing"],
)
def test_a_new_secret_must_verify_for_every_registration_it_signs(
    signed: list[WebhookRegistration], secret: str, refusal: str | None
) -> None:
    if refusal is None:
        check_verifies(signed, WebhookSecret(secret=secret))
        return
    with pytest.raises(ConfigError, match=refusal) as raised:
        check_verifies(signed, WebhookSecret(secret=secret))
    assert secret not in str(raised.value)
