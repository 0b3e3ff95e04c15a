"""``python -m castiel.devhost``: the dev host with the same flags as ``castiel serve``."""

from __future__ import annotations

import argparse
import sys

from castiel.devhost.host import HostOptions, serve
from castiel.errors import ConfigError


def parse_options(argv: list[str] | None = None) -> HostOptions:
    """``--port``, ``--host``, ``--run-timers-now``, ``--only NAME,NAME``, ``--app module:attr`` as ``HostOptions``."""
    parser = argparse.ArgumentParser(prog="python -m castiel.devhost", description=__doc__)
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--run-timers-now", action="store_true", help="fire every timer once at start-up")
    parser.add_argument("--only", default="", metavar="NAME,NAME", help="run just these functions")
    parser.add_argument("--app", default="function_app:app", metavar="module:attr")
    args = parser.parse_args(argv)
    only = frozenset(name.strip() for name in args.only.split(",") if name.strip())
    return HostOptions(port=args.port, host=args.host, run_timers_now=args.run_timers_now, only=only, app=args.app)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; a configuration problem exits with status 2 and its message."""
    options = parse_options(argv)
    try:
        serve(options)
    except ConfigError as exc:
        print(f"castiel serve: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
