"""Text made fit for one line — a log line, an audit field, a CLI line — whatever it holds.

Anything a sender or a provider controls can hold a newline, a NUL or a C1 control (an ASGI path is percent-decoded,
HTTP header values may carry bytes 0x80-0xFF, an error body is any text), and request input can be as long as the
server lets it: written as is, it forges log lines and floods them. ``escaped`` writes every character that is not
printable as its Python escape; ``printable`` also bounds the length.
"""

from __future__ import annotations

MAX_SHOWN = 200
"""The most characters of untrusted input a log line or audit field shows."""


def escaped(text: str) -> str:
    """``text`` with each non-printable character as its Python escape (``\\n``, ``\\x00``, ``\\u2028``): one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def printable(text: str, limit: int = MAX_SHOWN) -> str:
    """``escaped`` text of at most ``limit`` characters of ``text``, the rest counted: one line, of bounded length."""
    shown = escaped(text[:limit])
    return shown if len(text) <= limit else f"{shown}…(+{len(text) - limit} chars)"
