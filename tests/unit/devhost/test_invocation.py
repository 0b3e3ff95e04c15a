"""One invocation: the functionTimeout bound and the correlation scope."""

from __future__ import annotations

import asyncio

import pytest

from castiel.devhost.invocation import FunctionTimeout, Invocation
from castiel.devhost.loader import HostedFunction, TimerBinding, caller
from castiel.settlement import typed_message
from castiel.telemetry import current_correlation_id

BINDING = TimerBinding("0 0 * * * *", run_on_startup=False)


async def test_a_function_past_the_timeout_fails_with_function_timeout() -> None:
    async def slow(timer: object) -> None:
        await asyncio.sleep(5)

    invocation = Invocation(HostedFunction("slow", BINDING, caller(slow, "timer")), None, timeout=0.05)
    with pytest.raises(FunctionTimeout, match=r"slow exceeded functionTimeout of 0\.05s"):
        await invocation.call(None)


async def test_a_timeout_error_of_the_function_itself_is_not_mistaken_for_the_host_timeout() -> None:
    async def own_timeout(timer: object) -> None:
        raise TimeoutError("provider took too long")

    invocation = Invocation(HostedFunction("own", BINDING, caller(own_timeout, "timer")), None, timeout=5)
    with pytest.raises(TimeoutError, match="provider took too long") as caught:
        await invocation.call(None)
    assert not isinstance(caught.value, FunctionTimeout)


@pytest.mark.parametrize("given", ["corr-1", None])
async def test_the_function_runs_under_the_invocation_correlation_id(given: str | None) -> None:
    def sync_fn(timer: object) -> str | None:
        return current_correlation_id()

    invocation = Invocation(HostedFunction("sync", BINDING, caller(sync_fn, "timer")), given, timeout=None)
    assert await invocation.call(None) == invocation.correlation_id
    if given is not None:
        assert invocation.correlation_id == given


@pytest.mark.parametrize("given", ["a\x85b", "line\u2028break", "with space", "x" * 129])
def test_a_caller_correlation_id_unfit_for_a_log_line_is_replaced(given: str) -> None:
    invocation = Invocation(HostedFunction("sync", BINDING, caller(lambda timer: None, "timer")), given, timeout=None)
    assert invocation.correlation_id != given
    assert invocation.correlation_id.isprintable()


def test_describe_names_the_exception_type() -> None:
    assert typed_message(ValueError("bad value")) == "ValueError: bad value"
