"""What the HMAC-SHA256 signing schemes share: the ``HmacScheme`` base (keys decoded once, every candidate compared
in constant time, ``sign`` beside ``verify``), the ``Verified`` answer, case-insensitive headers, and the checks of a
hex digest and of a signed timestamp's replay window."""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from castiel.errors import ConfigError, SignatureError

TOLERANCE_SECONDS = 300
"""How far a signed timestamp may lie from ``now``, either way, inclusive."""

Secret = str | bytes
"""A configured secret: text as the provider shows it, or raw key bytes."""

DIGEST_SIZE = hashlib.sha256().digest_size
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_MAX_TIMESTAMP_DIGITS = 12


@dataclass(frozen=True, slots=True)
class Verified:
    """A delivery that verified: what the scheme vouches for."""

    scheme: str
    delivery_id: str | None = None
    timestamp: int | None = None
    key_index: int | None = None
    subject: str | None = None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (lowercase), matched case-insensitively."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


class HmacScheme(ABC):
    """A provider's HMAC-SHA256 signing scheme: ``verify`` what it sent, ``sign`` as it would (tests, CLI, sandbox)."""

    name: str

    def keys(self, secrets: Sequence[Secret]) -> tuple[hmac.HMAC, ...]:
        """The secrets decoded once into keyed HMAC states; ``ConfigError`` if there are none or one is unusable."""
        if not secrets:
            raise ConfigError(f"a {self.name} registration needs at least one secret")
        return tuple(hmac.new(self.key_bytes(secret), digestmod=hashlib.sha256) for secret in secrets)

    def key_bytes(self, secret: Secret) -> bytes:
        """The HMAC key a configured secret stands for: its UTF-8 bytes, or the bytes given."""
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not key:
            raise ConfigError(f"an empty {self.name} secret")
        return key

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, keys: Sequence[hmac.HMAC], now: float) -> Verified:
        """Check the delivery against ``keys`` at time ``now``; ``SignatureError`` with the reason if it fails."""

    @abstractmethod
    def sign(self, body: bytes, secret: Secret, *, now: float, delivery_id: str | None = None) -> dict[str, str]:
        """The headers the provider would send with ``body``; ``delivery_id`` goes where the scheme carries one."""

    def _match(self, keys: Sequence[hmac.HMAC], candidates: Sequence[bytes], *parts: bytes) -> int:
        """The index of the key whose MAC over ``parts`` equals a candidate; ``SignatureError`` if none does."""
        for index, key in enumerate(keys):
            digest = _digest(key, parts)
            # Every candidate is compared, so the time taken says nothing about which one (if any) matched.
            if sum(hmac.compare_digest(digest, candidate) for candidate in candidates):
                return index
        raise SignatureError(f"the {self.name} signature matches none of the registration's secrets")

    def _mac(self, secret: Secret, *parts: bytes) -> bytes:
        return _digest(hmac.new(self.key_bytes(secret), digestmod=hashlib.sha256), parts)


def _digest(key: hmac.HMAC, parts: Sequence[bytes]) -> bytes:
    # A copy of the keyed state skips re-deriving the padded key on every delivery.
    mac = key.copy()
    for part in parts:
        mac.update(part)
    return mac.digest()


def prefixed_hex(value: str, prefix: str, name: str) -> bytes:
    """The digest bytes of header ``name``'s ``<prefix><64 hex digits>`` value; ``SignatureError`` otherwise."""
    if not value.startswith(prefix):
        raise SignatureError(f"{name} does not start with {prefix}")
    digits = value[len(prefix) :]
    if len(digits) != 2 * DIGEST_SIZE or not _HEX_DIGITS.issuperset(digits):
        raise SignatureError(f"{name} is not {prefix} followed by {2 * DIGEST_SIZE} hex digits")
    return bytes.fromhex(digits)


def signed_timestamp(value: str | None, name: str, now: float) -> tuple[int, str]:
    """The timestamp as seconds and as sent: the signed content uses the header text, leading zeros and all."""
    if value is None:
        raise SignatureError(f"missing {name} header")
    if not (0 < len(value) <= _MAX_TIMESTAMP_DIGITS and value.isascii() and value.isdigit()):
        raise SignatureError(f"{name} is not whole Unix seconds (digits only)")
    timestamp = int(value)
    age = now - timestamp
    if age > TOLERANCE_SECONDS:
        raise SignatureError(f"{name} is {age:.0f} s old, outside the {TOLERANCE_SECONDS} s window (stale or replayed)")
    if -age > TOLERANCE_SECONDS:
        raise SignatureError(f"{name} is {-age:.0f} s in the future, outside the {TOLERANCE_SECONDS} s window")
    return timestamp, value
