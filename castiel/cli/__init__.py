"""The ``castiel`` command: the dev host, and the operators' view of tasks, queues, webhooks and status."""

from castiel.cli.core import app


def main() -> None:
    """Console-script entry point."""
    app(prog_name="castiel")


__all__ = ["app", "main"]
