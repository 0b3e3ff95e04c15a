"""Standard Webhooks (standardwebhooks.com): ``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>
…`` with ``webhook-id`` and ``webhook-timestamp``; ``whsec_`` base64 keys. Salesforce signed callouts and the generic
``standard`` provider sign this way."""

from __future__ import annotations

import base64
import hmac
import uuid
from collections.abc import Mapping, Sequence

from castiel.errors import ConfigError, SignatureError
from castiel.webhooks.schemes.base import DIGEST_SIZE, HmacScheme, Secret, Verified, header, signed_timestamp

_WHSEC_PREFIX = "whsec_"
_SHOWN_REASONS = 3
_SHOWN_VERSION = 10


class StandardWebhooksScheme(HmacScheme):
    """Standard Webhooks (standardwebhooks.com): Salesforce signed callouts and the generic ``standard`` provider.

    Keys are ``whsec_<base64>`` as the spec serializes them (padding optional); any other text, or bytes, is used
    as the raw key. The signature header is a space-separated list of ``<version>,<base64>`` entries; ``v1``
    entries are HMAC-SHA256 and any one matching verifies, as in the reference library (standard-webhooks,
    ``libraries/python``). Entries it cannot use — another version (``v1a``), no comma, not base64, not 32 bytes —
    are skipped, never fatal (the reference raises on the last three): a sender may list signatures we do not know
    beside one we do. A refusal names what was skipped.
    """

    name = "standard"
    id_header = "webhook-id"
    timestamp_header = "webhook-timestamp"
    signature_header = "webhook-signature"

    def key_bytes(self, secret: Secret) -> bytes:
        """A ``whsec_`` key base64-decoded, any other secret as raw bytes."""
        if isinstance(secret, str) and secret.startswith(_WHSEC_PREFIX):
            encoded = secret.removeprefix(_WHSEC_PREFIX)
            try:
                secret = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except ValueError as exc:
                raise ConfigError("a whsec_ secret that is not valid base64") from exc
        return super().key_bytes(secret)

    def verify(self, headers: Mapping[str, str], body: bytes, keys: Sequence[hmac.HMAC], now: float) -> Verified:
        """Check id, timestamp window and the ``v1`` signatures over ``{id}.{ts}.{body}``."""
        delivery_id = header(headers, self.id_header)
        if not delivery_id:
            raise SignatureError(f"missing {self.id_header} header")
        if not (delivery_id.isascii() and delivery_id.isprintable()):
            raise SignatureError(f"{self.id_header} is not printable ASCII")
        timestamp, stamp = signed_timestamp(header(headers, self.timestamp_header), self.timestamp_header, now)
        value = header(headers, self.signature_header)
        if value is None:
            raise SignatureError(f"missing {self.signature_header} header")
        candidates, skipped = _v1_signatures(value)
        try:
            index = self._match(keys, candidates, f"{delivery_id}.{stamp}.".encode(), body)
        except SignatureError as exc:
            if not skipped:
                raise
            raise SignatureError(f"{exc} (skipped: {_listed(skipped)})") from None
        return Verified(self.name, delivery_id=delivery_id, timestamp=timestamp, key_index=index)

    def sign(self, body: bytes, secret: Secret, *, now: float, delivery_id: str | None = None) -> dict[str, str]:
        """The three headers, with a fresh ``msg_`` id when none is given."""
        delivery_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        stamp = int(now)
        signature = self._mac(secret, f"{delivery_id}.{stamp}.".encode(), body)
        return {
            self.id_header: delivery_id,
            self.timestamp_header: str(stamp),
            self.signature_header: "v1," + base64.b64encode(signature).decode(),
        }


def _v1_signatures(value: str) -> tuple[list[bytes], list[str]]:
    """The ``v1`` signatures of a ``webhook-signature`` header, and why each other entry was skipped."""
    entries = [entry for entry in value.split(" ") if entry]
    if not entries:
        raise SignatureError("webhook-signature is empty")
    signatures: list[bytes] = []
    skipped: list[str] = []
    for position, entry in enumerate(entries, start=1):
        version, comma, encoded = entry.partition(",")
        if not comma:
            skipped.append(f"entry {position} has no comma")
        elif version != "v1":
            skipped.append(f"entry {position} is version {version[:_SHOWN_VERSION]}")
        else:
            try:
                signature = base64.b64decode(encoded, validate=True)
            except ValueError:
                skipped.append(f"entry {position} is not valid base64")
                continue
            if len(signature) == DIGEST_SIZE:
                signatures.append(signature)
            else:
                skipped.append(f"entry {position} is not a {DIGEST_SIZE}-byte HMAC-SHA256")
    if not signatures:
        raise SignatureError(f"webhook-signature has no usable v1 signature ({_listed(skipped)})")
    return signatures, skipped


def _listed(reasons: Sequence[str]) -> str:
    """Reasons joined for a refusal, at most ``_SHOWN_REASONS`` of them (a header may carry thousands of entries)."""
    shown = "; ".join(reasons[:_SHOWN_REASONS])
    more = len(reasons) - _SHOWN_REASONS
    return f"{shown}; {more} more" if more > 0 else shown
