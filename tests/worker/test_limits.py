"""The in-memory limiter (embedded mode and the Redis fallback), the headers, and the
limits read from the contract. No Redis, no Django."""

from __future__ import annotations

import asyncio

import pytest

from gateway_sync.contract.schema import Key, Plan, SafetyLimits
from gateway_sync.worker.limits import (
    DAY_S,
    MONTH_S,
    Decision,
    Limit,
    MemoryLimiter,
    limits_for_key,
    limits_for_plan,
    limits_for_route,
    rate_limit_headers,
    redis_key,
)

pytestmark = pytest.mark.anyio

SECOND = Limit(window_s=1, max_requests=10, name="second")
MINUTE = Limit(window_s=60, max_requests=100, name="minute")
DAY = Limit(window_s=DAY_S, max_requests=1000, name="day")


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> MemoryLimiter:
    return MemoryLimiter(clock=clock)


async def test_a_window_admits_its_quota_then_refuses(limiter):
    decisions = [await limiter.check(scope="key:1", limits=[MINUTE]) for _ in range(101)]
    assert [d.allowed for d in decisions].count(True) == 100
    assert [d.remaining for d in decisions[:3]] == [99, 98, 97]
    refused = decisions[-1]
    assert not refused.allowed
    assert refused.limit == MINUTE
    assert refused.remaining == 0
    assert refused.retry_after_s == pytest.approx(60)
    assert not refused.degraded


async def test_a_burst_of_concurrent_checks_admits_exactly_the_quota(limiter):
    decisions = await asyncio.gather(*(limiter.check(scope="key:1", limits=[MINUTE]) for _ in range(500)))
    assert sum(d.allowed for d in decisions) == 100


async def test_scopes_are_independent(limiter):
    for _ in range(10):
        assert (await limiter.check(scope="sub:1", limits=[SECOND])).allowed
    assert not (await limiter.check(scope="sub:1", limits=[SECOND])).allowed
    assert (await limiter.check(scope="sub:2", limits=[SECOND])).allowed


async def test_the_window_slides(limiter, clock):
    for _ in range(60):
        assert (await limiter.check(scope="s", limits=[MINUTE])).allowed
        clock.now += 0.5  # 60 requests over 30 s
    clock.now += 10  # t = 40 s after the first
    for _ in range(40):
        assert (await limiter.check(scope="s", limits=[MINUTE])).allowed
    refused = await limiter.check(scope="s", limits=[MINUTE])
    assert not refused.allowed
    # The first request (40 s ago) leaves the window in 20 s.
    assert refused.retry_after_s == pytest.approx(20)
    assert refused.reset_s == pytest.approx(20)
    clock.now += 20
    assert (await limiter.check(scope="s", limits=[MINUTE])).allowed
    assert not (await limiter.check(scope="s", limits=[MINUTE])).allowed
    clock.now += 0.5  # the second request leaves
    assert (await limiter.check(scope="s", limits=[MINUTE])).allowed


async def test_a_refused_request_consumes_nothing_in_any_window(limiter, clock):
    both = [SECOND, MINUTE]
    for _ in range(10):
        assert (await limiter.check(scope="s", limits=both)).allowed
    for _ in range(50):  # refused by the second window: the minute is not charged
        decision = await limiter.check(scope="s", limits=both)
        assert not decision.allowed
        assert decision.limit == SECOND
        assert 0 < (decision.retry_after_s or 0) <= 1
    clock.now += 1
    allowed = await limiter.check(scope="s", limits=both)
    assert allowed.allowed
    # The binding window is the one with the fewest left: second (9) rather than minute (89).
    assert (allowed.limit, allowed.remaining) == (SECOND, 9)
    minute_only = await limiter.check(scope="s", limits=[MINUTE])
    assert minute_only.remaining == 100 - 12


async def test_the_longest_wait_binds_when_two_windows_refuse(limiter, clock):
    tight = [Limit(window_s=1, max_requests=5, name="second"), Limit(window_s=60, max_requests=5, name="minute")]
    for _ in range(5):
        assert (await limiter.check(scope="s", limits=tight)).allowed
    decision = await limiter.check(scope="s", limits=tight)
    assert not decision.allowed
    assert decision.limit is not None
    assert decision.limit.name == "minute"
    assert decision.retry_after_s == pytest.approx(60)


async def test_cost_counts_units_all_or_nothing(limiter, clock):
    assert (await limiter.check(scope="s", limits=[SECOND], cost=7)).remaining == 3
    refused = await limiter.check(scope="s", limits=[SECOND], cost=4)
    assert not refused.allowed
    assert refused.remaining == 3
    assert (await limiter.check(scope="s", limits=[SECOND], cost=3)).allowed
    too_big = await limiter.check(scope="other", limits=[SECOND], cost=11)
    assert not too_big.allowed
    assert too_big.retry_after_s == 1
    with pytest.raises(ValueError, match="cost"):
        await limiter.check(scope="s", limits=[SECOND], cost=0)


async def test_long_windows_are_fixed_and_reset_at_the_boundary(limiter, clock):
    clock.now = 10 * DAY_S + DAY_S - 5  # 5 s before midnight UTC
    small_day = Limit(window_s=DAY_S, max_requests=3, name="day")
    for _ in range(3):
        assert (await limiter.check(scope="s", limits=[small_day])).allowed
    refused = await limiter.check(scope="s", limits=[small_day])
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(5)
    assert refused.reset_s == pytest.approx(5)
    clock.now += 5
    decision = await limiter.check(scope="s", limits=[small_day])
    assert decision.allowed
    assert decision.remaining == 2
    assert decision.reset_s == pytest.approx(DAY_S)


async def test_idle_scopes_are_evicted(clock):
    limiter = MemoryLimiter(clock=clock)
    for n in range(100):
        await limiter.check(scope=f"key:{n}", limits=[SECOND])
    assert len(limiter) == 100
    clock.now += 1.5  # every second window has emptied
    await limiter.check(scope="key:new", limits=[SECOND])
    assert len(limiter) == 1


async def test_memory_is_bounded_by_max_scopes(clock):
    limiter = MemoryLimiter(clock=clock, max_scopes=50)
    for n in range(200):
        await limiter.check(scope=f"key:{n}", limits=[MINUTE])
    assert len(limiter) == 50


async def test_a_recently_used_scope_survives_eviction(clock):
    limiter = MemoryLimiter(clock=clock, max_scopes=3)
    for _ in range(5):
        await limiter.check(scope="busy", limits=[SECOND])
    for n in range(5):
        await limiter.check(scope=f"other:{n}", limits=[SECOND])
        await limiter.check(scope="busy", limits=[SECOND])
    assert not (await limiter.check(scope="busy", limits=[SECOND])).allowed


async def test_no_limits_allows():
    decision = await MemoryLimiter().check(scope="s", limits=[])
    assert decision.allowed
    assert decision.limit is None
    assert rate_limit_headers(decision) == {}


def test_headers_when_allowed():
    decision = Decision(
        allowed=True, limit=MINUTE, remaining=37, reset_s=22.2, retry_after_s=None, policies=(SECOND, MINUTE)
    )
    assert rate_limit_headers(decision) == {
        "RateLimit-Policy": '"second";q=10;w=1, "minute";q=100;w=60',
        "RateLimit": '"minute";r=37;t=23',
    }


def test_headers_when_refused_round_retry_after_up():
    decision = Decision(allowed=False, limit=MINUTE, remaining=0, reset_s=0.2, retry_after_s=0.2, policies=(MINUTE,))
    headers = rate_limit_headers(decision)
    assert headers["RateLimit"] == '"minute";r=0;t=1'
    assert headers["Retry-After"] == "1"
    decision = Decision(allowed=False, limit=MINUTE, remaining=0, reset_s=20, retry_after_s=20.01, policies=(MINUTE,))
    assert rate_limit_headers(decision)["Retry-After"] == "21"


def test_limits_for_plan_and_route():
    plan = Plan(id=1, product_id=2, name="pro", requests_per_second=5, requests_per_day=1000, requests_per_month=20_000)
    assert limits_for_plan(plan) == [
        Limit(window_s=1, max_requests=5, name="second"),
        Limit(window_s=DAY_S, max_requests=1000, name="day"),
        Limit(window_s=MONTH_S, max_requests=20_000, name="month"),
    ]
    assert limits_for_plan(Plan(id=1, product_id=2, name="free")) == []
    assert limits_for_route(SafetyLimits(requests_per_minute=600)) == [
        Limit(window_s=60, max_requests=600, name="minute")
    ]
    assert limits_for_route(SafetyLimits()) == []


def test_keys_share_a_hash_tag_per_scope():
    assert redis_key("sub:7", MINUTE) == "gateway:rl:{sub:7}:minute:60"
    assert redis_key("sub:7", DAY) == "gateway:rl:{sub:7}:day:86400"


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="bad limit"):
        Limit(window_s=0, max_requests=1, name="zero")


def test_limits_for_key():
    key = Key(hash="h", prefix="sk-a", app_id=1, requests_per_minute=30, requests_per_month=9000)
    assert limits_for_key(key) == [
        Limit(window_s=60, max_requests=30, name="minute"),
        Limit(window_s=MONTH_S, max_requests=9000, name="month"),
    ]
    assert limits_for_key(Key(hash="h", prefix="sk-a", app_id=1)) == []


async def test_a_refund_gives_back_what_a_check_consumed_in_every_window(limiter, clock):
    both = [MINUTE, DAY]
    first = await limiter.check(scope="s", limits=both, cost=3)
    kept = await limiter.check(scope="s", limits=both)
    clock.now += 1
    await limiter.refund(scope="s", decision=first)
    after = await limiter.check(scope="s", limits=both)
    assert (first.remaining, kept.remaining, after.remaining) == (97, 96, 98)


async def test_a_refund_of_a_refused_check_or_a_restarted_window_changes_nothing(limiter, clock):
    tiny = Limit(window_s=DAY_S, max_requests=1, name="day")
    clock.now = DAY_S * 100 - 1  # one second before the day ends
    admitted = await limiter.check(scope="s", limits=[tiny])
    refused = await limiter.check(scope="s", limits=[tiny])
    assert (admitted.allowed, refused.allowed) == (True, False)
    await limiter.refund(scope="s", decision=refused)
    assert not (await limiter.check(scope="s", limits=[tiny])).allowed
    clock.now += 2  # a new day: the old day's unit is not the new day's to give back
    assert (await limiter.check(scope="s", limits=[tiny])).allowed
    await limiter.refund(scope="s", decision=admitted)
    assert not (await limiter.check(scope="s", limits=[tiny])).allowed
