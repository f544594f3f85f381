"""Request quotas (per second, minute, day, month), exact across workers.

``check(scope=..., limits=..., cost=1)`` checks every given window of one scope and consumes
``cost`` in all of them, or in none: a refused request never eats quota. The caller picks
the scope (``sub:<id>``, ``key:<id>``, ``route:<id>``) and calls once per scope.

Two implementations of one protocol, ``RequestLimiter``:

- ``RedisLimiter`` (production): one Lua script per check (limits_lua.py), run with
  EVALSHA (SCRIPT LOAD again on NOSCRIPT). Redis runs it atomically and it reads Redis's
  ``TIME``, so every worker shares one counter and one clock: a burst of 500 concurrent
  requests against 100 per minute admits exactly 100, from any number of processes.
- ``MemoryLimiter`` (embedded mode, and the fallback when Redis is down): the same
  semantics in one process. Its critical section has no ``await``, so it needs no lock.

**Algorithm.** Windows up to an hour use a *sliding-window log*: one ZSET member per admitted
unit, scored with its time; entries older than the window are trimmed, the rest counted.
It is exact (no boundary burst) but its memory is O(limit) per scope, which is fine for
per-second and per-minute quotas (hundreds to thousands of members) and not for
``requests_per_month = 10_000_000``. Longer windows (day, month) use a *fixed-window
counter* (a HASH ``{w: window index, n: count}``): O(1) memory and exact within each
window, but the window restarts at a boundary instead of sliding, so a client may spend a
whole day's quota at 23:59 and again at 00:00 UTC. For a day or a month that is how
quotas are usually sold ("per calendar day"); for seconds and minutes it would double the
burst, which is why those slide.

Windows are aligned on the Unix epoch: a day is the UTC day; a **month is a fixed 30-day
period** (``MONTH_S``) aligned on the epoch, not the calendar month.

**Redis down.** ``fail_mode="open"``: the local ``MemoryLimiter`` decides, so the limits
still apply but per process (N workers admit up to N times the quota while the outage
lasts). ``fail_mode="closed"``: every request is refused with ``degraded=True``. Either
way the outage is logged once, its end once, and Redis is retried at most every
``probe_interval_s`` (so a blackholed Redis does not cost every request a timeout).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio
from redis.exceptions import RedisError

from gateway_sync.contract.schema import Key, Plan, SafetyLimits
from gateway_sync.worker.limits_lua import LIMIT_SCRIPT, REFUND_SCRIPT
from gateway_sync.worker.redis_scripts import FailMode, RedisOutage, ScriptCoalescer, eval_script, script_sha

log = logging.getLogger(__name__)

SECOND_S = 1
MINUTE_S = 60
DAY_S = 86_400
MONTH_S = 30 * DAY_S
# Windows up to this long slide (exact log, memory O(limit)); longer ones are fixed windows.
SLIDING_MAX_WINDOW_S = 3600
KEY_PREFIX = "gateway:rl:"


@dataclass(frozen=True, slots=True)
class Limit:
    window_s: int
    max_requests: int
    name: str

    def __post_init__(self) -> None:
        if self.window_s < 1 or self.max_requests < 0:
            raise ValueError(f"bad limit {self!r}: window_s must be >= 1 and max_requests >= 0")

    @property
    def sliding(self) -> bool:
        return self.window_s <= SLIDING_MAX_WINDOW_S


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    # The binding window: refused, the one that waits longest; allowed, the one with the
    # fewest requests left. None when no limits were given.
    limit: Limit | None
    remaining: int
    # Seconds until the binding window frees a unit (sliding) or restarts (fixed).
    reset_s: float
    # Refused: seconds until the same request could pass (for Retry-After). Else None.
    retry_after_s: float | None
    # Decided without Redis (fail-closed refusal, or the local fallback).
    degraded: bool = False
    # Every window checked, for the RateLimit-Policy header.
    policies: tuple[Limit, ...] = ()
    # What ``refund`` needs to give an admitted check back: its cost, its token (the Redis
    # log members' prefix) and its time (Redis's clock in ms, or the local clock in s).
    cost: int = 1
    token: str = ""
    at: float = 0.0


class RequestLimiter(Protocol):
    async def check(self, *, scope: str, limits: Sequence[Limit], cost: int = 1) -> Decision: ...

    async def refund(self, *, scope: str, decision: Decision) -> None:
        """Give back what an admitted ``check`` consumed (a later check refused the request)."""


@dataclass(frozen=True, slots=True)
class _WindowResult:
    remaining: int
    reset_s: float
    # None: room; math.inf: cost exceeds the limit; else seconds until cost fits.
    retry_s: float | None


def _decide(
    limits: Sequence[Limit], results: Sequence[_WindowResult], allowed: bool, *, degraded: bool = False
) -> Decision:
    policies = tuple(limits)
    if not limits:
        return Decision(allowed=True, limit=None, remaining=0, reset_s=0.0, retry_after_s=None, policies=policies)
    if allowed:
        index = min(range(len(limits)), key=lambda i: (results[i].remaining, -results[i].reset_s))
        return Decision(
            allowed=True,
            limit=limits[index],
            remaining=results[index].remaining,
            reset_s=results[index].reset_s,
            retry_after_s=None,
            degraded=degraded,
            policies=policies,
        )
    refused = [i for i in range(len(limits)) if results[i].retry_s is not None]
    index = max(refused, key=lambda i: results[i].retry_s or 0.0)
    retry = results[index].retry_s or 0.0
    if math.isinf(retry):  # cost above the limit: never admissible; say "a full window"
        retry = float(limits[index].window_s)
    return Decision(
        allowed=False,
        limit=limits[index],
        remaining=results[index].remaining,
        reset_s=results[index].reset_s,
        retry_after_s=max(retry, 0.001),
        degraded=degraded,
        policies=policies,
    )


def _check_cost(cost: int) -> None:
    if cost < 1:
        raise ValueError(f"cost must be >= 1, not {cost}")


# --- in memory ---------------------------------------------------------------------------


class _Log:
    """A sliding log: (time, units) pairs, oldest first, and their sum."""

    __slots__ = ("count", "entries")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.count = 0

    def trim(self, now: float, window: float) -> None:
        entries = self.entries
        while entries and entries[0][0] <= now - window:
            self.count -= entries.popleft()[1]

    def probe(self, now: float, limit: Limit, cost: int) -> _WindowResult:
        window = limit.window_s
        self.trim(now, window)
        reset = self.entries[0][0] + window - now if self.entries else 0.0
        retry: float | None = None
        if self.count + cost > limit.max_requests:
            if cost > limit.max_requests:
                retry = math.inf
            else:
                needed, freed = self.count + cost - limit.max_requests, 0
                for stamp, units in self.entries:
                    freed += units
                    if freed >= needed:
                        retry = max(stamp + window - now, 0.001)
                        break
        return _WindowResult(max(limit.max_requests - self.count, 0), reset, retry)

    def consume(self, now: float, limit: Limit, cost: int) -> _WindowResult:
        reset = self.entries[0][0] + limit.window_s - now if self.entries else float(limit.window_s)
        self.entries.append((now, cost))
        self.count += cost
        return _WindowResult(max(limit.max_requests - self.count, 0), reset, None)

    def give_back(self, at: float, limit: Limit, cost: int) -> None:
        # The entry is recent: look for it from the newest end.
        for index in range(len(self.entries) - 1, -1, -1):
            if self.entries[index] == (at, cost):
                del self.entries[index]
                self.count -= cost
                return


class _Fixed:
    __slots__ = ("count", "index")

    def __init__(self) -> None:
        self.index = -1
        self.count = 0

    def probe(self, now: float, limit: Limit, cost: int) -> _WindowResult:
        index = math.floor(now / limit.window_s)
        if index != self.index:
            self.index, self.count = index, 0
        reset = (index + 1) * limit.window_s - now
        retry: float | None = None
        if self.count + cost > limit.max_requests:
            retry = math.inf if cost > limit.max_requests else reset
        return _WindowResult(max(limit.max_requests - self.count, 0), reset, retry)

    def consume(self, now: float, limit: Limit, cost: int) -> _WindowResult:
        self.count += cost
        reset = (self.index + 1) * limit.window_s - now
        return _WindowResult(max(limit.max_requests - self.count, 0), reset, None)

    def give_back(self, at: float, limit: Limit, cost: int) -> None:
        if math.floor(at / limit.window_s) == self.index:  # not restarted since
            self.count = max(self.count - cost, 0)


class _Scope:
    __slots__ = ("expires", "windows")

    def __init__(self) -> None:
        self.windows: dict[tuple[str, int], _Log | _Fixed] = {}
        # When every window of this scope is empty again: after that it holds nothing.
        self.expires = 0.0


class MemoryLimiter:
    """The limiter in one process. ``check`` has no ``await`` in it, so concurrent tasks
    cannot interleave inside it and it needs no lock. Memory stays bounded: scopes are
    kept in least-recently-used order, idle ones (every window expired) are dropped as
    they are met, and beyond ``max_scopes`` the least recently used scope is dropped (it
    forgets that scope's usage: a deliberate bound, set it above the number of active
    scopes). ``clock`` is wall-clock seconds (fixed windows align on the epoch)."""

    def __init__(self, *, max_scopes: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self.max_scopes = max_scopes
        self.clock = clock
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()

    def __len__(self) -> int:
        return len(self._scopes)

    async def check(self, *, scope: str, limits: Sequence[Limit], cost: int = 1) -> Decision:
        return self.check_now(scope=scope, limits=limits, cost=cost)

    def check_now(self, *, scope: str, limits: Sequence[Limit], cost: int = 1, degraded: bool = False) -> Decision:
        """``check`` without the coroutine (the whole decision is synchronous)."""
        _check_cost(cost)
        now = self.clock()
        self._evict_idle(now)
        state = self._scopes.get(scope)
        if state is None:
            state = self._scopes[scope] = _Scope()
            while len(self._scopes) > self.max_scopes:
                self._scopes.popitem(last=False)
        else:
            self._scopes.move_to_end(scope)
        windows: list[_Log | _Fixed] = []
        for limit in limits:
            key = (limit.name, limit.window_s)
            window = state.windows.get(key)
            if window is None:
                window = state.windows[key] = _Log() if limit.sliding else _Fixed()
            windows.append(window)
        results = [window.probe(now, limit, cost) for window, limit in zip(windows, limits, strict=True)]
        allowed = all(result.retry_s is None for result in results)
        if allowed:
            results = [window.consume(now, limit, cost) for window, limit in zip(windows, limits, strict=True)]
            longest = max((limit.window_s for limit in limits), default=0)
            state.expires = max(state.expires, now + longest)
        return dataclasses.replace(_decide(limits, results, allowed, degraded=degraded), cost=cost, at=now)

    async def refund(self, *, scope: str, decision: Decision) -> None:
        self.refund_now(scope=scope, decision=decision)

    def refund_now(self, *, scope: str, decision: Decision) -> None:
        if not decision.allowed:
            return
        state = self._scopes.get(scope)
        if state is None:
            return
        for limit in decision.policies:
            window = state.windows.get((limit.name, limit.window_s))
            if window is not None:
                window.give_back(decision.at, limit, decision.cost)

    def _evict_idle(self, now: float) -> None:
        # Least recently used first: stop at the first scope still holding usage. A fixed
        # window is kept until its longest window has passed since its last admission,
        # which covers the rest of the window it counted in.
        scopes = self._scopes
        while scopes:
            oldest = next(iter(scopes.values()))
            if oldest.expires > now:
                return
            scopes.popitem(last=False)


# --- Redis -------------------------------------------------------------------------------


def limiter_redis_client(url: str, *, timeout_s: float = 1.0, max_connections: int = 32) -> redis.asyncio.Redis:
    """A client for the limiter: bounded timeouts and no silent retries, because it sits on
    the request path and the fail mode decides what an unreachable Redis means.

    The timeout counts the worker's own event-loop lag too: a busy worker reads Redis's
    reply late, not Redis answering late. At 0.25 s a burst of hundreds of requests on a
    loaded machine timed out healthy calls and fell back to per-process limits (admitting
    122 of 100); 1 s keeps that for real outages. A refused connection fails at once, and
    after an outage is seen only one probe per ``probe_interval_s`` waits out a timeout."""
    # A blocking pool: a burst waits (up to ``timeout_s``) for one of ``max_connections``
    # instead of failing with MaxConnectionsError, which would look like an outage.
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=max(timeout_s, 1.0),
        client_name="gateway-limiter",
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_keepalive=True,
    )
    return redis.asyncio.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def redis_key(scope: str, limit: Limit) -> str:
    """``gateway:rl:{scope}:<name>:<window_s>``: the braces are a Redis Cluster hash tag,
    so every window of one scope lives on one slot and one script can touch them all."""
    return f"{KEY_PREFIX}{{{scope}}}:{limit.name}:{limit.window_s}"


class RedisLimiter:
    """Exact quotas shared by every worker (see the module docstring). The client is the
    caller's (see ``limiter_redis_client``), and so is closing it."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        fail_mode: FailMode = "open",
        fallback: MemoryLimiter | None = None,
        probe_interval_s: float = 0.5,
    ) -> None:
        self.outage = RedisOutage(what="rate limiter", fail_mode=fail_mode, probe_interval_s=probe_interval_s)
        self.client = client
        self.fail_mode: FailMode = fail_mode
        self.fallback = fallback if fallback is not None else MemoryLimiter()
        self.probe_interval_s = probe_interval_s
        self._checks = ScriptCoalescer(client, LIMIT_SCRIPT)
        self._refund_sha = script_sha(REFUND_SCRIPT)

    @property
    def degraded(self) -> bool:
        """True while Redis is considered down."""
        return self.outage.down

    async def check(self, *, scope: str, limits: Sequence[Limit], cost: int = 1) -> Decision:
        _check_cost(cost)
        if not limits:
            return _decide(limits, [], True)
        if self.outage.skip_redis():
            return self._without_redis(scope, limits, cost)
        try:
            reply, token = await self._run(scope, limits, cost)
        except (RedisError, OSError, TimeoutError) as exc:
            self.outage.failed(exc)
            return self._without_redis(scope, limits, cost)
        self.outage.succeeded()
        return dataclasses.replace(self._parse(limits, reply[:-1]), cost=cost, token=token, at=reply[-1])

    async def _run(self, scope: str, limits: Sequence[Limit], cost: int) -> tuple[list[int], str]:
        keys = [redis_key(scope, limit) for limit in limits]
        token = uuid.uuid4().hex
        args: list[int | str] = [cost, token]
        for limit in limits:
            args += [limit.window_s * 1000, limit.max_requests, 0 if limit.sliding else 1]
        reply = await self._checks.call(keys, args)
        return [int(value) for value in reply], token

    async def refund(self, *, scope: str, decision: Decision) -> None:
        """Best effort: if Redis fails now, the request keeps its unit (logged)."""
        if not decision.allowed or not decision.policies:
            return
        if decision.degraded:
            self.fallback.refund_now(scope=scope, decision=decision)
            return
        keys = [redis_key(scope, limit) for limit in decision.policies]
        args: list[int | str | float] = [decision.cost, decision.token, int(decision.at)]
        for limit in decision.policies:
            args += [limit.window_s * 1000, 0 if limit.sliding else 1]
        try:
            await eval_script(self.client, REFUND_SCRIPT, keys, args, sha=self._refund_sha)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("rate limiter: could not give back a unit of %s: %r", scope, exc)

    @staticmethod
    def _parse(limits: Sequence[Limit], reply: Sequence[int]) -> Decision:
        results = []
        for i in range(len(limits)):
            remaining, reset_ms, retry_ms = reply[1 + 3 * i : 4 + 3 * i]
            retry = None if retry_ms == -1 else math.inf if retry_ms == -2 else retry_ms / 1000
            results.append(_WindowResult(remaining, reset_ms / 1000, retry))
        return _decide(limits, results, reply[0] == 1)

    def _without_redis(self, scope: str, limits: Sequence[Limit], cost: int) -> Decision:
        if self.fail_mode == "open":
            return self.fallback.check_now(scope=scope, limits=limits, cost=cost, degraded=True)
        return Decision(
            allowed=False,
            limit=None,
            remaining=0,
            reset_s=self.probe_interval_s,
            retry_after_s=max(self.probe_interval_s, 1.0),
            degraded=True,
            policies=tuple(limits),
        )


# --- headers and the contract ------------------------------------------------------------


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` in the structured-fields form of
    draft-ietf-httpapi-ratelimit-headers (``"minute";q=100;w=60`` and
    ``"minute";r=37;t=23``), plus ``Retry-After`` (whole seconds, rounded up) when refused.
    The policy header lists every window checked; ``RateLimit`` reports the binding one."""
    headers: dict[str, str] = {}
    if decision.policies:
        headers["RateLimit-Policy"] = ", ".join(
            f'"{limit.name}";q={limit.max_requests};w={limit.window_s}' for limit in decision.policies
        )
    if decision.limit is not None:
        headers["RateLimit"] = f'"{decision.limit.name}";r={decision.remaining};t={math.ceil(decision.reset_s)}'
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after_s or 1)))
    return headers


def request_quotas(
    per_second: int | None, per_minute: int | None, per_day: int | None = None, per_month: int | None = None
) -> list[Limit]:
    """Request quotas, shortest window first (unset ones skipped)."""
    pairs = (
        ("second", SECOND_S, per_second),
        ("minute", MINUTE_S, per_minute),
        ("day", DAY_S, per_day),
        ("month", MONTH_S, per_month),
    )
    return [Limit(window_s=window, max_requests=value, name=name) for name, window, value in pairs if value is not None]


def limits_for_plan(plan: Plan) -> list[Limit]:
    """The plan's request quotas, per subscription."""
    return request_quotas(
        plan.requests_per_second, plan.requests_per_minute, plan.requests_per_day, plan.requests_per_month
    )


def limits_for_key(key: Key) -> list[Limit]:
    """The key's own request quotas, across every product it calls."""
    return request_quotas(
        key.requests_per_second, key.requests_per_minute, key.requests_per_day, key.requests_per_month
    )


def limits_for_route(limits: SafetyLimits) -> list[Limit]:
    """A route's safety limits (``route.limits``), for all its callers together."""
    return request_quotas(limits.requests_per_second, limits.requests_per_minute)
