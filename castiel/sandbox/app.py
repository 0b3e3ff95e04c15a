"""The sandbox as one ASGI app: the stand-in OAuth provider's routes first (they share the providers' prefixes), the
``/_sandbox`` controls, then the five provider APIs."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from castiel.sandbox.control import Control
from castiel.sandbox.oauth import oauth_routes
from castiel.sandbox.state import Sandbox


def build_app(sandbox: Sandbox) -> Starlette:
    """The app serving ``sandbox``."""
    routes: list[BaseRoute] = [*oauth_routes(sandbox.oauth), *Control(sandbox).routes()]
    for api in sandbox.providers.values():
        routes.extend(api.routes())
    return Starlette(routes=routes)
