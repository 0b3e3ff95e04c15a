"""The rate limiter every provider call goes through, from every function instance (DESIGN §5).

``RateLimiter.check`` tests a call against three *sliding-window logs* (``local_window.py`` describes the algorithm)
— integration (the connection), operation (the connection's calls of one kind) and tenant — in one atomic Redis
script, ``sliding_window.lua``: the call is recorded at every level only if every level admits it, so two instances
can never both take the last slot. Checks started in the same turn of the event loop travel to Redis together, as
one ``EVALSHA`` per tenant whose checks run one after another inside the script: 32 checks in flight cost one round
trip per tenant among them, not 32.
``RateLimiter.peek`` asks the same script whether a call would be admitted now and records nothing: a gate in front of
work whose calls are each checked again when they are made (the inbound sync's rate check).

Keys are ``castiel:rl:{<tenantId>}:…`` with the connection id in the connection's keys, so tenants never share a
budget by accident, and the hash tag keeps one tenant's keys in one cluster slot. Every key expires.

Over a limit, fetch/create/update are *queued* and delete is *refused* (``raise_for_check`` turns either into the
error the queue worker acts on). Provider responses tighten a connection's limit through ``observe_response``
(``adaptive.py``). When Redis does not answer, a ``LocalWindow`` with the same policy divided by the expected
instance count decides instead, one ``degraded`` alert fires per outage, and Redis is tried again after a backoff
that doubles from one second to thirty.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping
from functools import partial

from redis.asyncio import Redis

from castiel.clock import Clock, system_clock, to_datetime
from castiel.coalesce import Coalescer
from castiel.errors import Deferred, RateLimited, RetryableError
from castiel.models import RateLimitCheck, format_utc
from castiel.ratelimit.adaptive import DEFAULT_ADAPTIVE, MICROS, AdaptiveConfig, Throttle, throttle_for
from castiel.ratelimit.alerts import AlertCallback, AlertKind, RateLimitAlert, Subject, UsageAlarm, log_alert
from castiel.ratelimit.local_window import LocalWindow, WindowOutcome, WindowPlan
from castiel.ratelimit.policy import LEVELS, PROVIDER_LEVEL, QUEUED_OPERATIONS, Limit, LimitedOperation, RateLimitPolicy
from castiel.redis_script import RedisScript, hash_tag
from castiel.settings import Settings
from castiel.telemetry import log_event
from castiel.telemetry.outcomes import rate_limited

KEY_PREFIX = "castiel:rl"
MAX_BATCH = 64
"""Checks per script call: bounds how long one call holds Redis (single-threaded) from everyone else."""

_REPLY_LEVELS: tuple[str | None, ...] = (None, *LEVELS, PROVIDER_LEVEL)
_PLAN_CACHE_SIZE = 65_536


def raise_for_check(check: RateLimitCheck) -> None:
    """Return if the call may go ahead; otherwise raise what the queue worker acts on (DESIGN §7).

    Queued (fetch, create, update): ``Deferred`` — the message is re-sent scheduled at ``retryAfterSeconds`` and the
    original completed, no retry counted. Refused (delete): ``RateLimited`` — re-sent at its retry-after with the retry
    count raised, dead-lettered with the reason after ``SYNC_MAX_RETRIES``. Never dropped either way.
    """
    if check.allowed:
        return
    message = f"rate limit ({check.level}): retry in {check.retry_after_seconds:.3f}s"
    if check.queued:
        raise Deferred(message, check.retry_after_seconds)
    raise RateLimited(message, check.retry_after_seconds, check.level)


_Check = tuple[WindowPlan, int, str | None]


class RedisWindow:
    """The sliding-window log in Redis. Raises ``RetryableError`` when Redis does not answer within ``timeout``."""

    def __init__(self, redis: Redis, *, timeout_seconds: float = 1.0) -> None:
        self._client = redis
        script = partial(
            RedisScript, redis, "castiel.ratelimit", purpose="the rate limiter", timeout_seconds=timeout_seconds
        )
        self._check_script = script("sliding_window.lua")
        self._throttle_script = script("adaptive.lua")
        # Checks of one event-loop turn go to Redis as one EVALSHA per tenant (a script may only touch keys of one
        # cluster slot, and a tenant's keys share its hash tag); each check stays atomic, and so does the batch.
        self._checks: Coalescer[_Check, WindowOutcome] = Coalescer(
            self._run, max_batch=MAX_BATCH, group=lambda check: hash_tag(check[0].keys[0])
        )

    async def aclose(self) -> None:
        """Close the Redis client."""
        await self._client.aclose()

    async def check(self, plan: WindowPlan, now_us: int, member: str | None) -> WindowOutcome:
        """Admit and record the call at every level, or refuse it and record nothing; ``member`` names the entry
        (None: a peek, which only asks and records nothing)."""
        return await self._checks.submit((plan, now_us, member))

    async def observe(self, throttle_key: str, throttle: Throttle, now_us: int) -> int:
        """Raise the connection's throttle; returns the pause deadline it had before."""
        args = (now_us, throttle.paused_until, throttle.quarter_until, throttle.half_until)
        previous: int = await self._throttle_script.run((throttle_key,), args)
        return previous

    async def _run(self, batch: list[_Check]) -> list[WindowOutcome]:
        # Each key goes once, however many checks share it (their tenant, a busy connection): fewer arguments to encode.
        slots: dict[str, int] = {}
        specs: list[str] = []
        for plan, now_us, member in batch:
            k1 = slots.setdefault(plan.keys[0], len(slots) + 1)
            k2 = slots.setdefault(plan.keys[1], len(slots) + 1)
            k3 = slots.setdefault(plan.keys[2], len(slots) + 1)
            k4 = slots.setdefault(plan.throttle_key, len(slots) + 1)
            (l1, l2, l3), (w1, w2, w3) = plan.limits, plan.windows_us
            entry = f"{member} 1" if member is not None else "- 0"
            specs.append(f"{k1} {k2} {k3} {k4} {now_us} {entry} {l1} {w1} {l2} {w2} {l3} {w3}")
        reply: bytes = await self._check_script.run(list(slots), specs)
        return [_outcome(answer) for answer in reply.split(b";")]


def _outcome(answer: bytes) -> WindowOutcome:
    n = [int(field) for field in answer.split()]
    return WindowOutcome(n[0] == 1, _REPLY_LEVELS[n[1]], n[2], n[3], n[4], (n[5], n[6], n[7]), (n[8], n[9], n[10]))


class _RedisHealth:
    """Whether to ask Redis: always while it answers; after a failure, again once a doubling backoff has passed."""

    def __init__(self, first_backoff_us: int, max_backoff_us: int) -> None:
        self.down_since: int | None = None
        self._first, self._max = first_backoff_us, max_backoff_us
        self._backoff = first_backoff_us
        self._retry_at = 0

    def due(self, now_us: int) -> bool:
        return self.down_since is None or now_us >= self._retry_at

    def failed(self, now_us: int) -> bool:
        """Note a failed attempt; True when it begins an outage."""
        if self.down_since is not None and now_us < self._retry_at:
            return False  # another check of the same attempt already counted it
        began = self.down_since is None
        if began:
            self.down_since, self._backoff = now_us, self._first
        else:
            self._backoff = min(self._max, self._backoff * 2)
        self._retry_at = now_us + self._backoff
        return began

    def answered(self) -> bool:
        """Note an answer; True when it ends an outage."""
        ended = self.down_since is not None
        self.down_since = None
        return ended


class RateLimiter:
    """Checks every provider call against the integration, operation and tenant limits; see the module docstring."""

    def __init__(
        self,
        redis: Redis,
        policy: RateLimitPolicy,
        clock: Clock = system_clock,
        alert: AlertCallback = log_alert,
        *,
        expected_instances: int = 1,
        adaptive: AdaptiveConfig = DEFAULT_ADAPTIVE,
        redis_timeout_seconds: float = 1.0,
        first_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self._redis = RedisWindow(redis, timeout_seconds=redis_timeout_seconds)
        self._local = LocalWindow(expected_instances)
        self._instances = expected_instances
        self._policy = policy
        self._clock = clock
        self._on_alert = alert
        self._adaptive = adaptive
        self._usage = UsageAlarm(self._alert)
        self._health = _RedisHealth(round(first_backoff_seconds * MICROS), round(max_backoff_seconds * MICROS))
        self._plans: dict[tuple[str, str, str, str, str | None], tuple[WindowPlan, Subject]] = {}
        self._member_prefix = os.urandom(6).hex() + "-"
        self._sequence = itertools.count()

    async def aclose(self) -> None:
        """Close the limiter's Redis client."""
        await self._redis.aclose()

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: Redis, *, clock: Clock = system_clock, alert: AlertCallback = log_alert
    ) -> RateLimiter:
        """The limiter of ``RATE_LIMIT_OVERRIDES`` and ``RATE_LIMIT_EXPECTED_INSTANCES``."""
        policy = RateLimitPolicy.from_settings(settings)
        return cls(redis, policy, clock, alert, expected_instances=settings.rate_limit_expected_instances)

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and the local window decides."""
        return self._health.down_since is not None

    async def check(
        self,
        *,
        tenant_id: str,
        connection_id: str,
        provider: str,
        operation: LimitedOperation,
        profile: str | None = None,
    ) -> RateLimitCheck:
        """Admit and record one call at every level, or refuse it (queued, or for a delete rejected).

        ``profile`` names the connection's kind of provider account where limits differ by it (Slack's app
        distribution, ``policy.py``)."""
        plan, subject = self._plan(tenant_id, connection_id, provider, operation, profile)
        now_us = round(self._clock() * MICROS)
        outcome = await self._decide(plan, now_us, record=True)
        used, limits = outcome.used, outcome.limits
        if used[0] * 5 >= limits[0] * 4 or used[1] * 5 >= limits[1] * 4 or used[2] * 5 >= limits[2] * 4:
            self._note_usage(plan, subject, outcome, now_us)
        answer = _answer(outcome, operation)
        if not answer.allowed:
            rate_limited(answer, tenant=tenant_id, connection=connection_id, provider=provider, operation=operation)
        return answer

    async def peek(
        self,
        *,
        tenant_id: str,
        connection_id: str,
        provider: str,
        operation: LimitedOperation,
        profile: str | None = None,
    ) -> RateLimitCheck:
        """Whether one call would be admitted now, answered as ``check`` answers, recording nothing (no slot taken,
        no usage alert): for a gate in front of calls that are each checked when they are made."""
        plan, _ = self._plan(tenant_id, connection_id, provider, operation, profile)
        return _answer(await self._decide(plan, round(self._clock() * MICROS), record=False), operation)

    async def observe_response(
        self, *, tenant_id: str, connection_id: str, provider: str, status_code: int, headers: Mapping[str, str]
    ) -> None:
        """Tighten the connection's limit, or pause it, as the provider's response asks (``adaptive.py``)."""
        now_us = round(self._clock() * MICROS)
        throttle = throttle_for(status_code, headers, now_us, self._adaptive)
        if throttle is None:
            return
        key = _throttle_key(tenant_id, connection_id)
        # Kept locally as well, so an outage later does not forget a pause.
        paused_before = self._local.observe(key, throttle).paused_until
        if self._health.due(now_us):
            try:
                paused_before = await self._redis.observe(key, throttle, now_us)
            except RetryableError as exc:
                self._redis_failed(now_us, exc)
            else:
                self._redis_answered(now_us)
        if throttle.paused_until > now_us >= paused_before:
            until = format_utc(to_datetime(throttle.paused_until / MICROS))
            subject = Subject(tenant_id, connection_id, provider)
            detail = f"connection paused until {until}: {throttle.reason}"
            self._alert(RateLimitAlert(AlertKind.CONNECTION_PAUSED, detail, now_us / MICROS, subject))

    async def _decide(self, plan: WindowPlan, now_us: int, *, record: bool) -> WindowOutcome:
        if self._health.due(now_us):
            member = f"{self._member_prefix}{next(self._sequence):x}" if record else None
            try:
                outcome = await self._redis.check(plan, now_us, member)
            except RetryableError as exc:
                self._redis_failed(now_us, exc)
            else:
                if self._health.down_since is not None:
                    self._redis_answered(now_us)
                return outcome
        return self._local.check(plan, now_us, record=record)

    def _note_usage(self, plan: WindowPlan, subject: Subject, outcome: WindowOutcome, now_us: int) -> None:
        for index, level in enumerate(LEVELS):
            self._usage.update(
                key=plan.keys[index],
                used=outcome.used[index],
                limit=outcome.limits[index],
                window_us=plan.windows_us[index],
                now_us=now_us,
                subject=subject,
                level=level,
            )

    def _redis_failed(self, now_us: int, error: RetryableError) -> None:
        if self._health.failed(now_us):
            detail = f"{error}; checking against a local window (limits / {self._instances}) until Redis answers"
            self._alert(RateLimitAlert(AlertKind.DEGRADED, detail, now_us / MICROS))

    def _redis_answered(self, now_us: int) -> None:
        if self._health.answered():
            self._alert(RateLimitAlert(AlertKind.RECOVERED, "Redis answers again", now_us / MICROS))

    def _alert(self, alert: RateLimitAlert) -> None:
        try:
            self._on_alert(alert)
        except Exception as exc:
            # A broken alert sink must not fail the provider call the alert is about.
            log_event("ratelimit.alert_failed", level=logging.ERROR, kind=alert.kind.value, error=repr(exc))

    def _plan(
        self, tenant_id: str, connection_id: str, provider: str, operation: LimitedOperation, profile: str | None
    ) -> tuple[WindowPlan, Subject]:
        cache_key = (tenant_id, connection_id, provider, operation, profile)
        found = self._plans.get(cache_key)
        if found is None:
            limits = self._policy.limits(
                tenant_id=tenant_id,
                connection_id=connection_id,
                provider=provider,
                operation=operation,
                profile=profile,
            )
            connection = _connection_key(tenant_id, connection_id)
            # A profile's calls have their own operation window: Slack limits conversations.history apart from the
            # metadata methods a health check calls.
            operation_key = f"{connection}:op:{operation}" + (f":{profile}" if profile else "")
            plan = WindowPlan(
                keys=(connection, operation_key, f"{KEY_PREFIX}:{{{tenant_id}}}:tenant"),
                limits=(limits.integration.count, limits.operation.count, limits.tenant.count),
                windows_us=(_micros(limits.integration), _micros(limits.operation), _micros(limits.tenant)),
                throttle_key=_throttle_key(tenant_id, connection_id),
            )
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            found = self._plans[cache_key] = (plan, Subject(tenant_id, connection_id, provider))
        return found


def _answer(outcome: WindowOutcome, operation: LimitedOperation) -> RateLimitCheck:
    """The window's outcome as the caller sees it: over a limit, ``operation`` is queued or (a delete) refused."""
    if outcome.allowed:
        return RateLimitCheck(
            allowed=True,
            queued=False,
            remaining=outcome.remaining,
            reset_at=to_datetime(outcome.reset_at_us / MICROS),
            retry_after_seconds=0.0,
        )
    return RateLimitCheck(
        allowed=False,
        queued=operation in QUEUED_OPERATIONS,
        remaining=0,
        reset_at=to_datetime(outcome.reset_at_us / MICROS),
        retry_after_seconds=outcome.retry_after_us / MICROS,
        level=outcome.level,
    )


def _connection_key(tenant_id: str, connection_id: str) -> str:
    return f"{KEY_PREFIX}:{{{tenant_id}}}:conn:{connection_id}"


def _throttle_key(tenant_id: str, connection_id: str) -> str:
    return f"{_connection_key(tenant_id, connection_id)}:throttle"


def _micros(limit: Limit) -> int:
    return round(limit.window_seconds * MICROS)
