"""GitHub's and Notion's scheme: ``sha256=<hex HMAC-SHA256(secret, body)>`` in one header."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping, Sequence

from castiel.errors import SignatureError
from castiel.webhooks.schemes.base import HmacScheme, Secret, Verified, header, prefixed_hex


class BodyHexScheme(HmacScheme):
    """``sha256=<hex HMAC-SHA256(secret, body)>`` in one header (GitHub, Notion)."""

    def __init__(
        self, name: str, signature_header: str, *, delivery_header: str | None = None, missing_hint: str = ""
    ) -> None:
        self.name = name
        self.signature_header = signature_header
        self.delivery_header = delivery_header
        self._missing_hint = missing_hint

    def verify(self, headers: Mapping[str, str], body: bytes, keys: Sequence[hmac.HMAC], now: float) -> Verified:
        """Check the body's HMAC; the delivery id comes from ``delivery_header`` when the provider sends one."""
        value = header(headers, self.signature_header.lower())
        if value is None:
            raise SignatureError(f"missing {self.signature_header} header{self._missing_hint}")
        digest = prefixed_hex(value, "sha256=", self.signature_header)
        index = self._match(keys, (digest,), body)
        delivery_id = header(headers, self.delivery_header.lower()) if self.delivery_header else None
        return Verified(self.name, delivery_id=delivery_id or None, key_index=index)

    def sign(self, body: bytes, secret: Secret, *, now: float, delivery_id: str | None = None) -> dict[str, str]:
        """The signature header, plus the delivery header (a fresh id if none is given) when the scheme has one."""
        signed = {self.signature_header: "sha256=" + self._mac(secret, body).hex()}
        if self.delivery_header:
            signed[self.delivery_header] = delivery_id or str(uuid.uuid4())
        return signed
