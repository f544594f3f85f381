"""Request quotas at admission, shared by every request path (/api, /v1): the subscription's
plan quotas, the key's own, then the route's safety limits, each scope checked in turn.

A request refused by one scope gets back what the earlier ones consumed, so a refused
request spends no quota anywhere. A request admitted here but refused by a later check
(/v1's token quota) is given back the same way (``refund_request_quotas``). Each path
answers a refusal in its own error format.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway_sync.contract.schema import Route
from gateway_sync.worker.auth import Caller
from gateway_sync.worker.limits import (
    Decision,
    RequestLimiter,
    limits_for_key,
    limits_for_plan,
    limits_for_route,
    rate_limit_headers,
)
from gateway_sync.worker.record import (
    LIMIT_ALLOWED,
    LIMIT_DEGRADED_CLOSED,
    LIMIT_DEGRADED_OPEN,
    LIMIT_LIMITED,
    RequestRecord,
)


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    """A scope said no: the headers to answer with (RateLimit-*, Retry-After), and whether
    the refusal comes from an unreachable limiter (fail-closed) rather than a spent quota."""

    headers: dict[str, str]
    degraded: bool


@dataclass(frozen=True, slots=True)
class QuotaAdmission:
    """Every scope said yes: the headers to answer with, and what each scope counted (for
    ``refund_request_quotas`` when a later check refuses the request after all)."""

    headers: dict[str, str]
    counted: tuple[tuple[str, Decision], ...]


async def check_request_quotas(
    limiter: RequestLimiter, caller: Caller, route: Route | None, record: RequestRecord
) -> dict[str, str] | QuotaRefusal:
    """The quota headers of an admitted request, or the refusal. Notes the most telling
    decision on ``record.limit_decision``."""
    admitted = await admit_request(limiter, caller, route, record)
    return admitted if isinstance(admitted, QuotaRefusal) else admitted.headers


async def refund_request_quotas(limiter: RequestLimiter, admission: QuotaAdmission) -> None:
    """Give back what an admitted request counted in every scope: it was refused later."""
    for scope, decision in admission.counted:
        await limiter.refund(scope=scope, decision=decision)


async def admit_request(
    limiter: RequestLimiter, caller: Caller, route: Route | None, record: RequestRecord
) -> QuotaAdmission | QuotaRefusal:
    """``check_request_quotas``, keeping what each scope counted."""
    checks = [(f"sub:{caller.subscription.id}", limits_for_plan(caller.plan))]
    key_limits = limits_for_key(caller.key)
    if key_limits:
        checks.append((f"key:{caller.key.prefix}", key_limits))
    if route is not None:
        route_limits = limits_for_route(route.limits)
        if route_limits:
            checks.append((f"route:{route.id}", route_limits))
    admitted: list[tuple[str, Decision]] = []
    headers: dict[str, str] = {}
    for scope, limits in checks:
        decision = await limiter.check(scope=scope, limits=limits)
        note_decision(record, decision)
        if not decision.allowed:
            for earlier_scope, earlier in admitted:
                await limiter.refund(scope=earlier_scope, decision=earlier)
            return QuotaRefusal(headers={**headers, **rate_limit_headers(decision)}, degraded=decision.degraded)
        if decision.policies:
            admitted.append((scope, decision))
            if not headers:  # the plan's quota is the one reported while nothing refuses
                headers = rate_limit_headers(decision)
    return QuotaAdmission(headers=headers, counted=tuple(admitted))


def note_decision(record: RequestRecord, decision: Decision) -> None:
    """The record keeps the most telling decision: a refusal over a degraded one over a plain one."""
    if not decision.allowed:
        record.limit_decision = LIMIT_DEGRADED_CLOSED if decision.degraded else LIMIT_LIMITED
    elif decision.degraded:
        record.limit_decision = LIMIT_DEGRADED_OPEN
    elif decision.policies and record.limit_decision != LIMIT_DEGRADED_OPEN:
        record.limit_decision = LIMIT_ALLOWED
