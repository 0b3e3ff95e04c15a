"""The ``captured`` fixture: spans and metrics in memory."""

from tests.telemetry_capture import captured as captured
