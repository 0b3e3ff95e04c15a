"""Provider field paths and value coercion: the per-field plumbing of entity mappings, parsed once, applied fast.

A path is dotted keys with list indexes (``properties.Name.title[0].plain_text``); a key holding dots, brackets or
quotes is written as a JSON string in brackets (``properties["a.b"]``). ``FieldPath.get`` reads one from a provider
object (``MISSING`` where there is nothing, unlike a JSON null); ``put`` writes one into a payload being built for a
push. ``COERCIONS`` turn provider values into a shard field's declared type; null stays null.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson

from castiel.models import format_utc

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__slots__": ()})()
"""What ``FieldPath.get`` returns where a record has nothing at the path."""

FieldType = Literal["string", "integer", "number", "boolean", "datetime", "date", "json"]

_PATH_TOKEN = re.compile(r'(?P<name>[^.\[\]"]+)|\[(?P<index>\d+)\]|\[(?P<quoted>"(?:[^"\\]|\\.)*")\]|(?P<dot>\.)')


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A parsed provider field path: keys (str) and list indexes (int), read without re-parsing."""

    text: str
    steps: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        """Parse ``text``; ``ValueError`` saying where it stops making sense."""
        steps: list[str | int] = []
        position, after_dot = 0, True
        while position < len(text):
            token = _PATH_TOKEN.match(text, position)
            if token is None:
                raise ValueError(f"path {text!r}: unexpected {text[position]!r} at position {position}")
            if token["dot"] is not None:
                if after_dot:
                    raise ValueError(f"path {text!r}: empty segment at position {position}")
                after_dot = True
            elif token["name"] is not None:
                if not after_dot:
                    raise ValueError(f"path {text!r}: a name must follow a dot at position {position}")
                steps.append(token["name"])
                after_dot = False
            elif after_dot and steps:
                raise ValueError(f"path {text!r}: a bracket cannot follow a dot at position {position}")
            else:
                steps.append(int(token["index"]) if token["index"] is not None else _key(text, token["quoted"]))
                after_dot = False
            position = token.end()
        if after_dot:
            raise ValueError(f"path {text!r}: {'empty' if not text else 'ends with a dot'}")
        return cls(text, tuple(steps))

    def get(self, data: Any) -> Any:
        """The value at this path in ``data``, or ``MISSING``."""
        value = data
        for step in self.steps:
            if type(step) is int:
                if type(value) is not list or step >= len(value):
                    return MISSING
                value = value[step]
            elif type(value) is dict:
                value = value.get(step, MISSING)
                if value is MISSING:
                    return MISSING
            else:
                return MISSING
        return value

    def put(self, target: dict[str, Any], value: Any) -> None:
        """Set ``value`` at this path in ``target``, creating the objects and lists on the way."""
        container: Any = target
        for step, following in zip(self.steps, self.steps[1:], strict=False):
            fresh: Any = [] if type(following) is int else {}
            container = _slot(container, step, fresh)
        last = self.steps[-1]
        if type(last) is int:
            _pad(container, last)
        container[last] = value


def _key(text: str, quoted: str) -> str:
    try:
        return str(orjson.loads(quoted))
    except orjson.JSONDecodeError:
        raise ValueError(f"path {text!r}: {quoted} is not a JSON string") from None


def _slot(container: Any, step: str | int, fresh: Any) -> Any:
    if type(step) is int:
        _pad(container, step)
        if container[step] is None:
            container[step] = fresh
        return container[step]
    return container.setdefault(step, fresh)


def _pad(items: list[Any], index: int) -> None:
    items.extend([None] * (index + 1 - len(items)))


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"{value!r} is not a string")


def _to_integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError(f"{value!r} is not an integer")


def _to_number(value: Any) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return float(text)
    raise ValueError(f"{value!r} is not a number")


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value in (0, 1) and isinstance(value, int):
        return bool(value)
    raise ValueError(f"{value!r} is not a boolean")


def as_datetime(value: Any) -> datetime:
    """ISO-8601 text (any offset; no offset or a bare date is UTC) or epoch seconds (Slack's ``ts``) as a UTC time."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time")
    text = value.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        parsed = datetime.fromisoformat(text)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _to_datetime(value: Any) -> str:
    return format_utc(as_datetime(value))


def _to_date(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date")
    text = value.strip()
    return (date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()).isoformat()


COERCIONS: Mapping[FieldType, Callable[[Any], Any] | None] = {
    "string": _to_string,
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "datetime": _to_datetime,
    "date": _to_date,
    "json": None,
}
"""Field type → the function that coerces a provider value into it (None: kept as received). Null stays null."""
