"""The five provider adapters, built once per process over one engine."""

from __future__ import annotations

from adapters.base import AdapterRegistry, BaseAdapter
from adapters.engine import HttpEngine
from adapters.github import GitHubAdapter
from adapters.google import GoogleCalendarAdapter
from adapters.notion import NotionAdapter
from adapters.salesforce import SalesforceAdapter
from adapters.slack import SlackAdapter

ADAPTER_TYPES: tuple[type[BaseAdapter], ...] = (
    SalesforceAdapter,
    NotionAdapter,
    SlackAdapter,
    GitHubAdapter,
    GoogleCalendarAdapter,
)


def build_registry(engine: HttpEngine) -> AdapterRegistry:
    """A registry holding every provider adapter, all sending through ``engine``."""
    return AdapterRegistry([adapter_type(engine) for adapter_type in ADAPTER_TYPES])
