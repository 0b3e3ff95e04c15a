"""The canonical form of mapped values: what "the same value" and "the same record" mean to the sync engine.

Two values are the same when they differ only in key order, JSON whitespace, number spelling (``1``, ``1.0`` and
``1e0`` are one number; ``true`` is never ``1``), line endings, or whitespace at the ends of a string. Dedup's content
hash, echo suppression's fingerprints and the conflict rules all use this one definition, so a value that one
provider spells differently from another is never a change, a duplicate miss or a conflict.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import orjson

_SCALARS = (str, int, bool, type(None))
_EXACT = 2**53  # floats up to here hold every integer exactly
_INT64 = 2**63


def normalise(value: Any) -> Any:
    """``value`` in canonical form: trimmed strings with ``\\n`` line endings, integral floats as ints, recursively."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind is float:
        return int(value) if value.is_integer() and -_EXACT < value < _EXACT else value
    if kind is int and not -_INT64 <= value < _INT64:
        return float(value)  # JSON numbers past 64 bits compare as doubles, as most JSON readers hold them
    if kind is dict:
        return {key: _PLAIN[type(item)](item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_PLAIN[type(item)](item) for item in value]
    return value


def _itself(value: Any) -> Any:
    return value


def _trimmed(value: str) -> str:
    return value.strip() if "\r" not in value else _text(value)


_PLAIN: defaultdict[type, Callable[[Any], Any]] = defaultdict(
    lambda: normalise, {str: _trimmed, bool: _itself, type(None): _itself}
)
"""Per item type, how a container normalises an item: the common scalars without a call through ``normalise``."""


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON of ``value``: normalised, keys sorted, no insignificant whitespace."""
    return orjson.dumps(normalise(value), option=orjson.OPT_SORT_KEYS)


def fingerprint(fields: Mapping[str, Any]) -> str:
    """A short hash of a record's mapped fields in canonical form (32 hex digits)."""
    plain = fields if type(fields) is dict else dict(fields)
    return hashlib.blake2b(canonical_bytes(plain), digest_size=16).hexdigest()


def same(left: Any, right: Any) -> bool:
    """Whether two values are the same in canonical form (the common cases without serialising)."""
    if left is right:
        return True
    kind = type(left)
    if kind is type(right) and kind in _SCALARS:
        if left == right:
            return True
        if kind is str:
            return _text(left) == _text(right)
        if kind is not int:
            return False
    return canonical_bytes(left) == canonical_bytes(right)


def _text(value: str) -> str:
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.strip()
