"""Slack's scheme: ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{ts}:{body}")>`` within the replay
window."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from castiel.errors import SignatureError
from castiel.webhooks.schemes.base import HmacScheme, Secret, Verified, header, prefixed_hex, signed_timestamp


class SlackScheme(HmacScheme):
    """Slack: ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{ts}:{body}")>`` within the replay window."""

    name = "slack"
    signature_header = "X-Slack-Signature"
    timestamp_header = "X-Slack-Request-Timestamp"

    def verify(self, headers: Mapping[str, str], body: bytes, keys: Sequence[hmac.HMAC], now: float) -> Verified:
        """Check the timestamp window, then the HMAC of the versioned base string."""
        timestamp, stamp = signed_timestamp(header(headers, self.timestamp_header.lower()), self.timestamp_header, now)
        value = header(headers, self.signature_header.lower())
        if value is None:
            raise SignatureError(f"missing {self.signature_header} header")
        digest = prefixed_hex(value, "v0=", self.signature_header)
        index = self._match(keys, (digest,), b"v0:" + stamp.encode() + b":", body)
        return Verified(self.name, timestamp=timestamp, key_index=index)

    def sign(self, body: bytes, secret: Secret, *, now: float, delivery_id: str | None = None) -> dict[str, str]:
        """Slack's two headers for ``body`` sent at ``now`` (Slack has no delivery header)."""
        stamp = int(now)
        return {
            self.timestamp_header: str(stamp),
            self.signature_header: "v0=" + self._mac(secret, f"v0:{stamp}:".encode(), body).hex(),
        }
