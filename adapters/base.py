"""The adapter seam: one adapter per provider, looked up by provider name.

Adapters declare what differs per provider and leave the HTTP loop, pagination and error resolution to a shared
engine (STYLE.md: meltano/airbyte); that engine lands with the first provider adapter. Adapters never import storage.
"""

from __future__ import annotations

from typing import ClassVar

from castiel.errors import PermanentError
from castiel.models import Provider


class BaseAdapter:
    """A provider adapter; subclasses set ``provider``."""

    provider: ClassVar[Provider]


class AdapterRegistry:
    """Provider → adapter instance, built once per process."""

    def __init__(self, adapters: list[BaseAdapter] | None = None) -> None:
        self._adapters: dict[Provider, BaseAdapter] = {}
        for adapter in adapters or []:
            self.register(adapter)

    def register(self, adapter: BaseAdapter) -> None:
        """Add an adapter; a second one for the same provider replaces the first."""
        self._adapters[adapter.provider] = adapter

    def get(self, provider: Provider) -> BaseAdapter:
        """The adapter for ``provider``; a ``PermanentError`` when none is installed (retrying cannot help)."""
        try:
            return self._adapters[provider]
        except KeyError:
            raise PermanentError(f"no adapter is installed for provider '{provider.value}'") from None
