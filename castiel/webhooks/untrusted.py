"""Request input (a URL's registration id, a header) made fit for one log line, one audit field or one CLI line.

Anything a sender controls can hold a newline, a NUL or a C1 control (an ASGI path is percent-decoded, and HTTP
header values may carry bytes 0x80-0xFF), and it can be as long as the server lets it: written as is, it forges log
lines and floods them. ``printable`` escapes every character that is not printable and bounds the length.
"""

from __future__ import annotations

import re

MAX_SHOWN = 200
"""The most characters of request input a log line or audit field shows."""

# The CLI's id rule (``castiel.cli.flags``): every registration id has it, whether generated (``uuid4().hex``) or
# stored by an older version, so an id of another shape names no registration and is answered without a lookup.
MAX_REGISTRATION_ID_LENGTH = 36
_REGISTRATION_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def is_registration_id(value: str) -> bool:
    """Whether ``value`` has the shape of a registration id (1-36 lowercase letters, digits, single hyphens)."""
    return len(value) <= MAX_REGISTRATION_ID_LENGTH and _REGISTRATION_ID.fullmatch(value) is not None


def printable(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` with each non-printable character as its Python escape (``\\n``, ``\\x00``, ``\\u2028``) and at most
    ``limit`` characters of it kept, the rest counted: one line, of bounded length, whatever the input."""
    shown = text[:limit]
    if not shown.isprintable():
        shown = "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in shown)
    return shown if len(text) <= limit else f"{shown}…(+{len(text) - limit} chars)"
