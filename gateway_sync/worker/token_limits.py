"""Token quotas and dollar budgets for the LLM path, with reservations.

A request's tokens and cost are only known when it ends, but it must be admitted when it
starts. So the LLM proxy:

1. ``reserve(scope=..., budgets=..., tokens=..., microusd=...)`` at admission, with an
   upper estimate (prompt tokens + ``max_tokens`` or a cap; the estimated cost). Every
   budget of the scope is checked and, only if all have room, the amounts are added to
   all of them, atomically. Refused: ``retry_after_s`` (when the refusing window restarts;
   ``math.inf`` if the amount exceeds the budget itself) and ``refused_by``.
2. ``settle(reservation, tokens=..., microusd=...)`` at the end, with the actual usage:
   the difference (usually negative) is added to the reservation's windows.
3. ``release(reservation)`` instead, when the upstream failed before producing anything.

Settle and release act once per reservation; later calls do nothing.

**Fixed windows, not a sliding log.** Each budget counts in a fixed window aligned on the
epoch (minute; UTC day; 30-day ``MONTH_S`` month), one counter per window index. A
reservation has to be adjusted later by an amount known only then, and a counter can take
``INCRBY <difference>`` whereas a sliding log of units (as limits.py keeps for requests
per second and minute) would need one member per token and the exact members to remove.
The price is the usual fixed-window boundary: a client may spend a minute's tokens at
:59 and again at :00.

**The roll-over rule.** A request's usage belongs to the windows that were current when
it was reserved. Settle and release adjust only those windows, and only while they are
still current: a window that has restarted since starts from zero and is charged
neither the reservation nor the actual usage (which would charge a request that spans a
boundary to a window that never admitted it). So a long stream that crosses a boundary
escapes the correction, by at most that one request.

**Overshoot.** Admission never overshoots (check-and-add is atomic: 20 concurrent
reservations of 100 tokens against 500 per minute admit exactly 5). Only ``settle`` can
take a window past its limit, when the actual usage exceeds the reservation; a spent
window then refuses everything, even a reservation of 0 of its unit, until it restarts.

Two implementations of ``TokenLimiter``: ``RedisTokenLimiter`` (shared by every worker;
Lua scripts in token_limits_lua.py, pipelined per loop turn, with Redis's clock) and
``MemoryTokenLimiter`` (embedded mode, and the fallback when Redis is down). Redis down
behaves as for the request limiter (``fail_mode`` open: the per-process memory limiter
decides; closed: refused with ``degraded=True``); settle and release of a reservation
made without Redis go to the memory limiter.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import redis.asyncio
from redis.exceptions import RedisError

from gateway_sync.contract.schema import Plan
from gateway_sync.worker.limits import DAY_S, MINUTE_S, MONTH_S
from gateway_sync.worker.redis_scripts import FailMode, RedisOutage, ScriptCoalescer
from gateway_sync.worker.token_limits_lua import RESERVE_SCRIPT, SETTLE_SCRIPT

log = logging.getLogger(__name__)

KEY_PREFIX = "gateway:tl:"
Unit = Literal["tokens", "microusd"]


@dataclass(frozen=True, slots=True)
class TokenBudget:
    unit: Unit
    window_s: int
    limit: int
    name: str

    def __post_init__(self) -> None:
        if self.unit not in ("tokens", "microusd") or self.window_s < 1 or self.limit < 0:
            raise ValueError(f"bad budget {self!r}: unit tokens|microusd, window_s >= 1, limit >= 0")

    @property
    def label(self) -> str:
        """``tokens-minute``, ``microusd-month``: the policy name in headers."""
        return f"{self.unit}-{self.name}"


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    budget: TokenBudget
    # The window the reservation counted in (floor(time / window)).
    index: int
    # The window's total: with this reservation when admitted, without it when refused.
    used: int
    # Seconds until the window restarts.
    reset_s: float

    @property
    def remaining(self) -> int:
        return max(self.budget.limit - self.used, 0)


@dataclass(slots=True)
class Reservation:
    allowed: bool
    scope: str
    tokens: int
    microusd: int
    usage: tuple[BudgetUsage, ...] = ()
    # Refused: the budget that waits longest (None when refused for want of Redis).
    refused_by: TokenBudget | None = None
    # Refused: seconds until the same reservation could pass; math.inf: never. Else None.
    retry_after_s: float | None = None
    # Decided without Redis (fail-closed refusal, or the per-process fallback).
    degraded: bool = False
    # Settled or released already.
    closed: bool = False

    @property
    def never(self) -> bool:
        """Refused for good: the amount exceeds a budget itself (a smaller request might pass)."""
        return self.retry_after_s is not None and math.isinf(self.retry_after_s)


class TokenLimiter(Protocol):
    async def reserve(
        self, *, scope: str, budgets: Sequence[TokenBudget], tokens: int, microusd: int
    ) -> Reservation: ...

    async def settle(self, reservation: Reservation, *, tokens: int, microusd: int) -> None:
        """Replace the reserved amounts with the actual ones (see the roll-over rule)."""

    async def release(self, reservation: Reservation) -> None:
        """Give the whole reservation back (nothing was produced)."""


def _amount(budget: TokenBudget, tokens: int, microusd: int) -> int:
    return tokens if budget.unit == "tokens" else microusd


def _check_amounts(tokens: int, microusd: int) -> None:
    if tokens < 0 or microusd < 0:
        raise ValueError(f"amounts must be >= 0, not tokens={tokens} microusd={microusd}")


def _decide(
    scope: str,
    tokens: int,
    microusd: int,
    usage: Sequence[BudgetUsage],
    retries: Sequence[float | None],
    *,
    degraded: bool,
) -> Reservation:
    refusing = [i for i, retry in enumerate(retries) if retry is not None]
    if not refusing:
        return Reservation(True, scope, tokens, microusd, tuple(usage), degraded=degraded)
    worst = max(refusing, key=lambda i: retries[i] or 0.0)
    retry = retries[worst] or 0.0
    return Reservation(
        False,
        scope,
        tokens,
        microusd,
        tuple(usage),
        refused_by=usage[worst].budget,
        retry_after_s=retry if math.isinf(retry) else max(retry, 0.001),
        degraded=degraded,
    )


# --- in memory ---------------------------------------------------------------------------


class _Window:
    __slots__ = ("index", "used")

    def __init__(self) -> None:
        self.index = -1
        self.used = 0


class _Scope:
    __slots__ = ("expires", "windows")

    def __init__(self) -> None:
        self.windows: dict[tuple[str, int], _Window] = {}
        # When every window of this scope has restarted: after that it holds nothing.
        self.expires = 0.0


class MemoryTokenLimiter:
    """The token limiter in one process. No ``await`` inside a decision, so no lock.
    Scopes are kept in least-recently-used order; idle ones (every window ended) are
    dropped as they are met, and beyond ``max_scopes`` the least recently used is
    forgotten. ``clock`` is wall-clock seconds (windows align on the epoch)."""

    def __init__(self, *, max_scopes: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self.max_scopes = max_scopes
        self.clock = clock
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()

    def __len__(self) -> int:
        return len(self._scopes)

    async def reserve(self, *, scope: str, budgets: Sequence[TokenBudget], tokens: int, microusd: int) -> Reservation:
        return self.reserve_now(scope=scope, budgets=budgets, tokens=tokens, microusd=microusd)

    def reserve_now(
        self, *, scope: str, budgets: Sequence[TokenBudget], tokens: int, microusd: int, degraded: bool = False
    ) -> Reservation:
        _check_amounts(tokens, microusd)
        if not budgets:
            return Reservation(True, scope, tokens, microusd, degraded=degraded)
        now = self.clock()
        state = self._scope(scope, now)
        windows, usage, retries = [], [], []
        for budget in budgets:
            window = state.windows.setdefault((budget.unit, budget.window_s), _Window())
            index = math.floor(now / budget.window_s)
            if window.index != index:
                window.index, window.used = index, 0
            amount = _amount(budget, tokens, microusd)
            retry: float | None = None
            reset = (index + 1) * budget.window_s - now
            if window.used >= budget.limit or window.used + amount > budget.limit:
                retry = math.inf if amount > budget.limit or budget.limit == 0 else reset
            windows.append(window)
            usage.append(BudgetUsage(budget, index, window.used, reset))
            retries.append(retry)
        if all(retry is None for retry in retries):
            for i, (window, budget) in enumerate(zip(windows, budgets, strict=True)):
                window.used += _amount(budget, tokens, microusd)
                usage[i] = BudgetUsage(budget, window.index, window.used, usage[i].reset_s)
                state.expires = max(state.expires, (window.index + 1) * budget.window_s)
        return _decide(scope, tokens, microusd, usage, retries, degraded=degraded)

    async def settle(self, reservation: Reservation, *, tokens: int, microusd: int) -> None:
        self.settle_now(reservation, tokens=tokens, microusd=microusd)

    async def release(self, reservation: Reservation) -> None:
        self.settle_now(reservation, tokens=0, microusd=0)

    def settle_now(self, reservation: Reservation, *, tokens: int, microusd: int) -> None:
        _check_amounts(tokens, microusd)
        if reservation.closed or not reservation.allowed:
            return
        reservation.closed = True
        state = self._scopes.get(reservation.scope)
        if state is None:
            return
        for usage in reservation.usage:
            budget = usage.budget
            window = state.windows.get((budget.unit, budget.window_s))
            # Only the reservation's window, and only while it is still the current one
            # (a restarted window holds a new index and is not charged).
            if window is not None and window.index == usage.index:
                delta = _amount(budget, tokens, microusd) - _amount(budget, reservation.tokens, reservation.microusd)
                window.used = max(window.used + delta, 0)

    def _scope(self, scope: str, now: float) -> _Scope:
        scopes = self._scopes
        while scopes:  # least recently used first: stop at the first still holding usage
            oldest = next(iter(scopes.values()))
            if oldest.expires > now:
                break
            scopes.popitem(last=False)
        state = scopes.get(scope)
        if state is None:
            state = scopes[scope] = _Scope()
            while len(scopes) > self.max_scopes:
                scopes.popitem(last=False)
        else:
            scopes.move_to_end(scope)
        return state


# --- Redis -------------------------------------------------------------------------------


def token_key(scope: str, budget: TokenBudget, index: int | None = None) -> str:
    """``gateway:tl:{scope}:<unit>:<window_s>:<index>``; without ``index``, the prefix the
    reserve script completes with the index of Redis's clock. The braces are a hash tag:
    every window of one scope lives on one Redis Cluster slot."""
    prefix = f"{KEY_PREFIX}{{{scope}}}:{budget.unit}:{budget.window_s}"
    return prefix if index is None else f"{prefix}:{index}"


class RedisTokenLimiter:
    """Token budgets shared by every worker (see the module docstring). The client is the
    caller's (see ``limits.limiter_redis_client``), and so is closing it."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        fail_mode: FailMode = "open",
        fallback: MemoryTokenLimiter | None = None,
        probe_interval_s: float = 0.5,
    ) -> None:
        self.outage = RedisOutage(
            what="token limiter", fail_mode=fail_mode, probe_interval_s=probe_interval_s, logger=log
        )
        self.client = client
        self.fail_mode: FailMode = fail_mode
        self.fallback = fallback if fallback is not None else MemoryTokenLimiter()
        self.probe_interval_s = probe_interval_s
        self._reserves = ScriptCoalescer(client, RESERVE_SCRIPT)
        self._settles = ScriptCoalescer(client, SETTLE_SCRIPT)

    @property
    def degraded(self) -> bool:
        """True while Redis is considered down."""
        return self.outage.down

    async def reserve(self, *, scope: str, budgets: Sequence[TokenBudget], tokens: int, microusd: int) -> Reservation:
        _check_amounts(tokens, microusd)
        if not budgets:
            return Reservation(True, scope, tokens, microusd)
        if self.outage.skip_redis():
            return self._without_redis(scope, budgets, tokens, microusd)
        keys = [token_key(scope, budget) for budget in budgets]
        args: list[int | str] = []
        for budget in budgets:
            args += [budget.window_s * 1000, budget.limit, _amount(budget, tokens, microusd)]
        try:
            reply = [int(value) for value in await self._reserves.call(keys, args)]
        except (RedisError, OSError, TimeoutError) as exc:
            self.outage.failed(exc)
            return self._without_redis(scope, budgets, tokens, microusd)
        self.outage.succeeded()
        now_ms = reply[1]
        usage, retries = [], []
        for i, budget in enumerate(budgets):
            used, reset_ms, retry_ms = reply[2 + 3 * i : 5 + 3 * i]
            usage.append(BudgetUsage(budget, now_ms // (budget.window_s * 1000), used, reset_ms / 1000))
            retries.append(None if retry_ms == -1 else math.inf if retry_ms == -2 else retry_ms / 1000)
        return _decide(scope, tokens, microusd, usage, retries, degraded=False)

    async def settle(self, reservation: Reservation, *, tokens: int, microusd: int) -> None:
        """Best effort: if Redis fails now, the windows keep the reserved amounts (logged)."""
        _check_amounts(tokens, microusd)
        if reservation.closed or not reservation.allowed:
            return
        if reservation.degraded:
            self.fallback.settle_now(reservation, tokens=tokens, microusd=microusd)
            return
        reservation.closed = True
        keys: list[str] = []
        args: list[int | str] = []
        for usage in reservation.usage:
            budget = usage.budget
            delta = _amount(budget, tokens, microusd) - _amount(budget, reservation.tokens, reservation.microusd)
            if delta:
                keys.append(token_key(reservation.scope, budget, usage.index))
                args += [budget.window_s * 1000, usage.index, delta]
        if not keys:
            return
        if self.outage.skip_redis():
            log.warning("token limiter: Redis down, %s keeps its reservation", reservation.scope)
            return
        try:
            await self._settles.call(keys, args)
        except (RedisError, OSError, TimeoutError) as exc:
            self.outage.failed(exc)
            log.warning("token limiter: could not settle a reservation of %s: %r", reservation.scope, exc)

    async def release(self, reservation: Reservation) -> None:
        await self.settle(reservation, tokens=0, microusd=0)

    def _without_redis(self, scope: str, budgets: Sequence[TokenBudget], tokens: int, microusd: int) -> Reservation:
        if self.fail_mode == "open":
            return self.fallback.reserve_now(
                scope=scope, budgets=budgets, tokens=tokens, microusd=microusd, degraded=True
            )
        return Reservation(False, scope, tokens, microusd, retry_after_s=max(self.probe_interval_s, 1.0), degraded=True)


# --- headers and the contract ------------------------------------------------------------


def _openai_duration(seconds: float) -> str:
    """OpenAI's reset format: ``20ms``, ``1s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 0)}ms"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def token_rate_limit_headers(reservation: Reservation) -> dict[str, str]:
    """Headers for a reservation:

    - ``X-RateLimit-Limit-Tokens``, ``-Remaining-Tokens``, ``-Reset-Tokens`` (OpenAI's
      names) for the binding token window: the one with the fewest tokens left (refused by
      a token budget: that one);
    - ``RateLimit-Policy`` listing every budget (``"tokens-minute";q=500;w=60``) and
      ``RateLimit`` for the binding window (refused by any budget: the refusing one), as in
      draft-ietf-httpapi-ratelimit-headers;
    - ``Retry-After`` (whole seconds, rounded up) when refused, unless it never can pass.

    The request limiter's ``rate_limit_headers`` gives the same two IETF fields for the
    request quotas: join both with ``combine_rate_limit_headers``."""
    headers: dict[str, str] = {}
    usage = reservation.usage
    if usage:
        headers["RateLimit-Policy"] = ", ".join(
            f'"{u.budget.label}";q={u.budget.limit};w={u.budget.window_s}' for u in usage
        )
    tokens = [u for u in usage if u.budget.unit == "tokens"]
    refused = [u for u in usage if u.budget == reservation.refused_by]
    binding_tokens = [u for u in refused if u.budget.unit == "tokens"] or tokens
    binding = min(binding_tokens, key=lambda u: (u.remaining, -u.reset_s)) if binding_tokens else None
    if binding is not None:
        headers["X-RateLimit-Limit-Tokens"] = str(binding.budget.limit)
        headers["X-RateLimit-Remaining-Tokens"] = str(binding.remaining)
        headers["X-RateLimit-Reset-Tokens"] = _openai_duration(binding.reset_s)
    reported = refused[0] if refused else binding
    if reported is not None:
        headers["RateLimit"] = f'"{reported.budget.label}";r={reported.remaining};t={math.ceil(reported.reset_s)}'
    if not reservation.allowed and not reservation.never:
        headers["Retry-After"] = str(max(1, math.ceil(reservation.retry_after_s or 1)))
    return headers


def combine_rate_limit_headers(*parts: Mapping[str, str]) -> dict[str, str]:
    """Merge header sets from several limiters: the IETF ``RateLimit`` and
    ``RateLimit-Policy`` fields are lists, so their items are joined; ``Retry-After`` is
    the longest wait; any other field, the last one given."""
    merged: dict[str, str] = {}
    for part in parts:
        for name, value in part.items():
            if name in ("RateLimit", "RateLimit-Policy") and name in merged:
                merged[name] = f"{merged[name]}, {value}"
            elif name == "Retry-After" and name in merged:
                merged[name] = str(max(int(merged[name]), int(value)))
            else:
                merged[name] = value
    return merged


def budgets_for_plan(plan: Plan) -> list[TokenBudget]:
    """The plan's token quotas (minute, UTC day, 30-day month) and its monthly budget in
    micro-dollars, per subscription; unset ones skipped."""
    rows: tuple[tuple[Unit, str, int, int | None], ...] = (
        ("tokens", "minute", MINUTE_S, plan.tokens_per_minute),
        ("tokens", "day", DAY_S, plan.tokens_per_day),
        ("tokens", "month", MONTH_S, plan.tokens_per_month),
        ("microusd", "month", MONTH_S, plan.monthly_budget_microusd),
    )
    return [TokenBudget(unit, window, limit, name) for unit, name, window, limit in rows if limit is not None]
