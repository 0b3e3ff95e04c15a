"""Loads a ``FunctionApp`` by ``module:attribute`` and reads each function's trigger, like the Functions worker.

Only what the dev host can run is returned: HTTP, timer and Service Bus queue triggers. Anything else is logged
and skipped (it would need the real host), so a newcomer's extra function never stops the rest from running.

Binding expressions (``%SERVICE_BUS_QUEUE%`` in a queue name or a schedule) are resolved as the host resolves them,
from the app settings (``settings.app_setting``); a function whose expression does not resolve is logged and
skipped, as the host puts it in error and runs the rest.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import re
import sys
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.decorators.http import HttpTrigger
from azure.functions.decorators.servicebus import ServiceBusQueueTrigger
from azure.functions.decorators.timer import TimerTrigger
from azurefunctions.extensions.base import GrpcClientType, SdkType

from castiel.errors import ConfigError
from castiel.settings import app_setting

logger = logging.getLogger("castiel.devhost")

_APP_SETTING = re.compile(r"%([^%]+)%")


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """An HTTP trigger: its route template (no prefix) and allowed methods (None allows every method)."""

    route: str
    methods: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class TimerBinding:
    """A timer trigger: its six-field NCRONTAB schedule."""

    schedule: str
    run_on_startup: bool


@dataclass(frozen=True, slots=True)
class QueueBinding:
    """A Service Bus queue trigger (one message per invocation).

    ``sdk_message``: the function takes the SDK type (``azure.servicebus.ServiceBusReceivedMessage``, through
    ``azurefunctions-extensions-bindings-servicebus``) rather than ``func.ServiceBusMessage``. ``auto_complete``
    False: the function settles its message itself (message actions); the host leaves it alone whatever happens.
    """

    queue_name: str
    sdk_message: bool = False
    auto_complete: bool = True


Binding = HttpBinding | TimerBinding | QueueBinding
UserCall = Callable[..., Awaitable[Any]]
CONTEXT = "context"
SETTLEMENT = "settlement"
"""The roles of the parameters the Python worker fills without a binding: ``context`` (a ``func.Context``, named
so), and the settlement client (any one parameter annotated with the message actions type)."""


@dataclass(frozen=True, slots=True)
class HostedFunction:
    """One function the dev host runs: its name, trigger, and ``call(trigger_argument, **extras)``.

    ``extras`` maps the roles of the arguments it declares beside the trigger (``CONTEXT``, ``SETTLEMENT``) to
    their parameter names, as the worker supplies them.
    """

    name: str
    binding: Binding
    call: UserCall
    extras: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """A short human form for the start-up line: ``name[http POST /route]``."""
        binding = self.binding
        if isinstance(binding, HttpBinding):
            methods = ",".join(sorted(binding.methods)) if binding.methods else "*"
            return f"{self.name}[http {methods} /{binding.route}]"
        if isinstance(binding, TimerBinding):
            return f"{self.name}[timer {binding.schedule}]"
        return f"{self.name}[queue {binding.queue_name}]"


@dataclass(frozen=True, slots=True)
class LoadedApp:
    """The app object and the directory its module lives in (where ``host.json`` is looked for)."""

    app: func.FunctionApp
    directory: Path


def load_app(spec: str) -> LoadedApp:
    """Import ``module:attribute`` from the working directory and return the ``FunctionApp`` it names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--app {spec!r} must be module:attribute, e.g. function_app:app")
    # The Functions worker imports from the script root; the console script's sys.path lacks the cwd.
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(f"--app {spec!r}: no module {module_name!r} importable from {cwd}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, func.FunctionApp):
        raise ConfigError(f"--app {spec!r}: {attribute!r} is not an azure.functions.FunctionApp")
    directory = Path(module.__file__).parent if module.__file__ else Path.cwd()
    return LoadedApp(app=app, directory=directory)


def discover(app: func.FunctionApp, only: Iterable[str] = ()) -> list[HostedFunction]:
    """The runnable functions of ``app``, restricted to the names in ``only`` when it is not empty."""
    # get_functions() remembers the names it validated and refuses to list them again; forget them, so the app
    # can be discovered more than once in a process (the worker only ever asks once).
    app.functions_bindings = None
    registered = {fn.get_function_name() or fn.get_user_function().__name__: fn for fn in app.get_functions()}
    wanted = frozenset(only)
    unknown = sorted(wanted - registered.keys())
    if unknown:
        raise ConfigError(f"--only names unknown functions {unknown}; the app has {sorted(registered)}")
    hosted = []
    for name, function in registered.items():
        if wanted and name not in wanted:
            continue
        trigger = function.get_trigger()
        try:
            binding = binding_of(trigger, name) if trigger is not None else None
        except ConfigError as exc:
            logger.error("devhost.function_error function=%s error=%s", name, exc)
            continue
        if trigger is None or binding is None:
            kind = trigger.type if trigger is not None else "none"
            logger.warning("devhost.skipped function=%s trigger=%s (needs the Functions host)", name, kind)
            continue
        user_function = function.get_user_function()
        if isinstance(binding, QueueBinding):
            binding = replace(binding, sdk_message=_takes_sdk_message(user_function, trigger.name))
        hosted.append(HostedFunction(name, binding, caller(user_function, trigger.name), extras_of(user_function)))
    return hosted


def binding_of(trigger: object, function_name: str) -> Binding | None:
    """The dev host's view of a trigger, or None for one it cannot run; ``ConfigError`` when one of its binding
    expressions names an app setting that does not exist."""
    if isinstance(trigger, HttpTrigger):
        # Like the Functions host: no route means the function's name; methods are HttpMethod enums or strings.
        methods = frozenset(str(getattr(m, "value", m)).upper() for m in trigger.methods) if trigger.methods else None
        return HttpBinding(route=(trigger.route or function_name).strip("/"), methods=methods)
    if isinstance(trigger, TimerTrigger):
        schedule = resolve_app_settings(trigger.schedule, function_name)
        return TimerBinding(schedule=schedule, run_on_startup=bool(trigger.run_on_startup))
    if isinstance(trigger, ServiceBusQueueTrigger) and str(trigger.cardinality or "one").lower() == "one":
        auto_complete = getattr(trigger, "auto_complete_messages", None) is not False
        return QueueBinding(resolve_app_settings(trigger.queue_name, function_name), auto_complete=auto_complete)
    return None


def resolve_app_settings(text: str, function_name: str) -> str:
    """``text`` with every ``%NAME%`` replaced by the app setting ``NAME``, as the Functions host resolves a binding
    expression; ``ConfigError`` naming the function and the setting when one does not resolve."""

    def value(match: re.Match[str]) -> str:
        resolved = app_setting(match[1])
        if resolved is None:
            raise ConfigError(f"function {function_name}: '%{match[1]}%' does not resolve to a value (no app setting)")
        return resolved

    return _APP_SETTING.sub(value, text)


def extras_of(user_function: Callable[..., Any]) -> dict[str, str]:
    """The parameters beside the bindings that the worker fills, by role (see ``CONTEXT``, ``SETTLEMENT``)."""
    extras: dict[str, str] = {}
    hints = typing.get_type_hints(user_function)
    for parameter in inspect.signature(user_function).parameters:
        if parameter == CONTEXT:
            extras[CONTEXT] = parameter
        elif isinstance(hints.get(parameter), type) and issubclass(hints[parameter], GrpcClientType):
            extras[SETTLEMENT] = parameter
    return extras


def _takes_sdk_message(user_function: Callable[..., Any], arg_name: str) -> bool:
    annotation = typing.get_type_hints(user_function).get(arg_name)
    return isinstance(annotation, type) and issubclass(annotation, SdkType)


def caller(user_function: Callable[..., Any], arg_name: str) -> UserCall:
    """Call the user function with its trigger argument by name (and its ``extras`` by theirs); a sync function runs
    in a worker thread."""
    if inspect.iscoroutinefunction(user_function):

        async def call_async(argument: Any, **extras: Any) -> Any:
            return await user_function(**{arg_name: argument}, **extras)

        return call_async

    async def call_sync(argument: Any, **extras: Any) -> Any:
        return await asyncio.to_thread(functools.partial(user_function, **{arg_name: argument}, **extras))

    return call_sync
