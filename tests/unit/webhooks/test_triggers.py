"""The HTTP trigger's request as the receiver sees it: where it came from is the last X-Forwarded-For entry."""

from __future__ import annotations

import azure.functions as func
import pytest

from castiel.triggers import webhook_request_from


@pytest.mark.parametrize(
    ("forwarded", "source"),
    [
        ("198.51.100.7:53211", "198.51.100.7:53211"),
        # The client may send its own header; only what the front end appended last is the peer.
        ("10.9.9.9, 203.0.113.66:40022", "203.0.113.66:40022"),
        ("[2001:db8::7]:443", "[2001:db8::7]:443"),
        ("", None),
        (None, None),
    ],
)
def test_the_source_address_is_the_last_x_forwarded_for_entry(forwarded: str | None, source: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    request = func.HttpRequest(
        method="POST",
        url="https://castiel.example/webhooks/r1/events",
        headers=headers,
        route_params={"registrationId": "r1"},
        body=b"{}",
    )

    received = webhook_request_from(request)

    assert received.source_address == source
    assert (received.registration_id, received.body, received.headers["content-type"]) == (
        "r1",
        b"{}",
        "application/json",
    )
