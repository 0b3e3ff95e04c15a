"""A small, hostile-input-safe XML reader: expat with every DTD feature refused, into a plain element tree.

Any ``<!DOCTYPE`` is refused outright, before its internal subset is read, which closes entity expansion ("billion
laughs", quadratic blow-up) and external entities in one place; nesting is bounded so walking the tree cannot
recurse without limit. Names are expanded to ``{namespace}local``. The standard library's expat is enough for this,
so no ``defusedxml`` dependency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.parsers import expat

from castiel.errors import InvalidMessage

MAX_DEPTH = 32


@dataclass(slots=True)
class Element:
    """One element: expanded tag, expanded attribute names, children in order, and its concatenated text."""

    tag: str
    attributes: dict[str, str]
    children: list[Element] = field(default_factory=list)
    text: str = ""

    @property
    def local_name(self) -> str:
        """The tag without its namespace."""
        return self.tag.rpartition("}")[2]

    def child(self, local_name: str) -> Element | None:
        """The first child with this local name."""
        return next((child for child in self.children if child.local_name == local_name), None)


class _Refused(Exception):
    """Raised from inside expat callbacks to stop the parse with a reason."""


def _expand(name: str) -> str:
    namespace, _, local = name.rpartition(" ")
    return f"{{{namespace}}}{local}" if namespace else local


class _TreeBuilder:
    def __init__(self) -> None:
        self.root: Element | None = None
        self.stack: list[Element] = []

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise _Refused(f"XML nests deeper than {MAX_DEPTH} elements")
        element = Element(_expand(name), {_expand(key): value for key, value in attributes.items()})
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)

    def end(self, _name: str) -> None:
        element = self.stack.pop()
        element.text = element.text.strip()

    def characters(self, data: str) -> None:
        if self.stack:
            self.stack[-1].text += data


def _refuse_doctype(*_args: object) -> None:
    raise _Refused("XML with a DOCTYPE is refused (entity expansion)")


def _refuse_entity(*_args: object) -> None:
    raise _Refused("XML entity declarations and external entities are refused")


def parse_xml(body: bytes) -> Element:
    """The document's root element; malformed, DTD-bearing or too deeply nested XML is ``InvalidMessage``."""
    builder = _TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True  # one text callback per run of characters, not one per line
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_entity
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.characters
    try:
        parser.Parse(body, True)
    except _Refused as exc:
        raise InvalidMessage(str(exc)) from exc
    except (expat.ExpatError, ValueError, LookupError) as exc:
        # ValueError/LookupError: an encoding declared in the prolog that Python cannot decode.
        raise InvalidMessage(f"body is not well-formed XML: {exc}") from exc
    if builder.root is None:
        raise InvalidMessage("body is not well-formed XML: no root element")
    return builder.root
