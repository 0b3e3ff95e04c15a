"""Where telemetry goes: Azure Monitor (App Insights) when a connection string is set, nowhere otherwise.

Under the Functions host with ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`` (``infra/``) the Python worker
installs the Azure Monitor distro itself before our code loads, and makes the host's invocation span current; then
this does nothing, so nothing is exported twice. Elsewhere (``castiel serve``, ``func start`` without that setting)
it installs the distro for traces, metrics and the ``castiel`` logger. With no connection string nothing is
installed: spans and instruments stay OpenTelemetry's no-ops.

Authentication follows ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` (``Authorization=AAD;ClientId=…``), which the
exporter reads itself: App Insights with local auth off accepts telemetry from the app's managed identity only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from castiel.telemetry import log_event

LOGGER_NAME = "castiel"
"""The logger whose records become App Insights traces (every ``log_event`` line)."""


def provider_installed() -> bool:
    """True when something (the Functions worker, an earlier call) installed a tracer provider already."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _azure_monitor(**options: Any) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(**options)


def configure(
    connection_string: str | None,
    *,
    installed: Callable[[], bool] = provider_installed,
    install: Callable[..., None] = _azure_monitor,
) -> bool:
    """Install the Azure Monitor exporters for ``connection_string``; True when this call installed them.

    ``installed`` and ``install`` are the seams a test replaces (installing is global and once per process).
    """
    if not connection_string:
        return False
    if installed():
        log_event("telemetry.configured_by_host")
        return False
    install(connection_string=connection_string, logger_name=LOGGER_NAME)
    log_event("telemetry.configured", exporter="azure_monitor")
    return True
