"""Request input (a URL's registration id, a header) made fit for one log line, one audit field or one CLI line.

Anything a sender controls can hold a newline, a NUL or a C1 control (an ASGI path is percent-decoded, and HTTP
header values may carry bytes 0x80-0xFF), and it can be as long as the server lets it: written as is, it forges log
lines and floods them. ``printable`` escapes every character that is not printable and bounds the length.
"""

from __future__ import annotations

from castiel.models.ids import is_valid_id

MAX_SHOWN = 200
"""The most characters of request input a log line or audit field shows."""


def is_registration_id(value: str) -> bool:
    """Whether ``value`` has the shape of a registration id: every one keeps the id rule (``castiel.models.ids``),
    whether generated (``uuid4().hex``) or stored by an older version, so an id of another shape names no
    registration and is answered without a lookup."""
    return is_valid_id(value)


def printable(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` with each non-printable character as its Python escape (``\\n``, ``\\x00``, ``\\u2028``) and at most
    ``limit`` characters of it kept, the rest counted: one line, of bounded length, whatever the input."""
    shown = text[:limit]
    if not shown.isprintable():
        shown = "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in shown)
    return shown if len(text) <= limit else f"{shown}…(+{len(text) - limit} chars)"
