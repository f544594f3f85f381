"""Token quotas and dollar budgets in memory (embedded mode and the Redis fallback), on a
fake clock; the headers; the budgets read from the contract. No Redis, no Django."""

from __future__ import annotations

import asyncio
import math

import pytest

from gateway_sync.contract.schema import Plan
from gateway_sync.worker.limits import DAY_S, MINUTE_S, MONTH_S, Limit, MemoryLimiter, rate_limit_headers
from gateway_sync.worker.token_limits import (
    MemoryTokenLimiter,
    Reservation,
    TokenBudget,
    budgets_for_plan,
    combine_rate_limit_headers,
    token_key,
    token_rate_limit_headers,
)

pytestmark = pytest.mark.anyio

TPM = TokenBudget("tokens", MINUTE_S, 500, "minute")
TPD = TokenBudget("tokens", DAY_S, 2_000, "day")
USD = TokenBudget("microusd", MONTH_S, 1_000_000, "month")  # $1 a month


class Clock:
    def __init__(self, now: float = 1_000_040.0) -> None:  # 20 s into a minute window
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> MemoryTokenLimiter:
    return MemoryTokenLimiter(clock=clock)


def used(reservation: Reservation) -> list[int]:
    return [u.used for u in reservation.usage]


async def test_a_reservation_counts_in_every_budget_of_its_unit(limiter):
    first = await limiter.reserve(scope="sub:1", budgets=[TPM, TPD, USD], tokens=120, microusd=3_000)
    assert first.allowed
    assert used(first) == [120, 120, 3_000]
    assert [u.remaining for u in first.usage] == [380, 1_880, 997_000]
    assert first.usage[0].reset_s == pytest.approx(40)
    assert first.refused_by is None
    assert first.retry_after_s is None
    assert not first.degraded


async def test_settle_replaces_the_reservation_with_the_actual_usage(limiter):
    first = await limiter.reserve(scope="sub:1", budgets=[TPM, USD], tokens=300, microusd=5_000)
    await limiter.settle(first, tokens=40, microusd=700)
    after = await limiter.reserve(scope="sub:1", budgets=[TPM, USD], tokens=10, microusd=100)
    assert used(after) == [40 + 10, 700 + 100]


async def test_settle_above_the_reservation_overshoots_and_then_refuses_everything(limiter):
    first = await limiter.reserve(scope="sub:1", budgets=[TPM], tokens=400, microusd=0)
    await limiter.settle(first, tokens=650, microusd=0)  # the model ignored its cap
    refused = await limiter.reserve(scope="sub:1", budgets=[TPM], tokens=1, microusd=0)
    assert not refused.allowed
    assert used(refused) == [650]
    assert refused.usage[0].remaining == 0
    assert refused.retry_after_s == pytest.approx(40)


async def test_release_gives_the_whole_reservation_back(limiter):
    first = await limiter.reserve(scope="sub:1", budgets=[TPM, USD], tokens=300, microusd=5_000)
    await limiter.release(first)
    after = await limiter.reserve(scope="sub:1", budgets=[TPM, USD], tokens=500, microusd=1)
    assert after.allowed
    assert used(after) == [500, 1]


async def test_settle_and_release_act_once(limiter):
    first = await limiter.reserve(scope="sub:1", budgets=[TPM], tokens=300, microusd=0)
    await limiter.settle(first, tokens=100, microusd=0)
    await limiter.settle(first, tokens=100, microusd=0)
    await limiter.release(first)
    assert first.closed
    assert used(await limiter.reserve(scope="sub:1", budgets=[TPM], tokens=1, microusd=0)) == [101]


async def test_a_refusal_names_the_budget_that_waits_longest_and_adds_nothing(limiter):
    await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=450, microusd=0)
    refused = await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=100, microusd=0)
    assert not refused.allowed
    assert refused.refused_by == TPM
    assert refused.retry_after_s == pytest.approx(40)
    assert not refused.never
    assert used(refused) == [450, 450]
    await limiter.release(refused)  # nothing to give back
    assert used(await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=50, microusd=0)) == [500, 500]
    # The day budget binds once it is the one that cannot fit.
    small_day = TokenBudget("tokens", DAY_S, 520, "day")
    day_refused = await limiter.reserve(scope="sub:2", budgets=[TPM, small_day], tokens=500, microusd=0)
    assert day_refused.allowed
    day_refused = await limiter.reserve(scope="sub:2", budgets=[TPM, small_day], tokens=30, microusd=0)
    assert day_refused.refused_by == small_day  # both refuse; the day waits longer
    assert day_refused.retry_after_s == pytest.approx(DAY_S - 1_000_040 % DAY_S)


async def test_an_amount_above_the_limit_is_never_admissible(limiter):
    refused = await limiter.reserve(scope="sub:1", budgets=[TPM, USD], tokens=501, microusd=0)
    assert not refused.allowed
    assert refused.never
    assert refused.retry_after_s == math.inf
    assert refused.refused_by == TPM
    assert "Retry-After" not in token_rate_limit_headers(refused)
    zero = TokenBudget("microusd", MONTH_S, 0, "month")
    assert (await limiter.reserve(scope="sub:1", budgets=[zero], tokens=1, microusd=0)).never


async def test_a_cost_only_budget_refuses_when_the_money_is_spent(limiter):
    first = await limiter.reserve(scope="sub:1", budgets=[USD], tokens=100_000, microusd=900_000)
    assert first.allowed  # no token budget: any number of tokens
    refused = await limiter.reserve(scope="sub:1", budgets=[USD], tokens=1, microusd=200_000)
    assert (refused.allowed, refused.refused_by) == (False, USD)
    await limiter.settle(first, tokens=100_000, microusd=1_000_000)
    # Spent exactly: even a request estimated at $0 is refused until the month restarts.
    free = await limiter.reserve(scope="sub:1", budgets=[USD], tokens=1, microusd=0)
    assert not free.allowed
    assert free.retry_after_s == pytest.approx(MONTH_S - 1_000_040 % MONTH_S)
    headers = token_rate_limit_headers(free)
    assert headers["RateLimit"] == f'"microusd-month";r=0;t={MONTH_S - 1_000_040 % MONTH_S}'
    assert "X-RateLimit-Limit-Tokens" not in headers


async def test_a_new_window_starts_from_zero(limiter, clock):
    await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=500, microusd=0)
    assert not (await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=1, microusd=0)).allowed
    clock.now += 40  # the next minute
    again = await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=100, microusd=0)
    assert again.allowed
    assert used(again) == [100, 600]


async def test_settle_after_a_roll_over_adjusts_only_the_windows_still_current(limiter, clock):
    """The rule: a request belongs to the windows current when it was reserved. The
    minute restarted meanwhile, so the new minute is charged neither the reservation nor
    the actual usage; the day, still the same, gets the correction."""
    long_stream = await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=400, microusd=0)
    clock.now += 50  # into the next minute, same day
    await limiter.settle(long_stream, tokens=900, microusd=0)
    after = await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=10, microusd=0)
    assert used(after) == [10, 910]
    # Released after a roll-over: the new window is not given anything back either.
    other = await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=300, microusd=0)
    clock.now += 60
    now_window = await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=5, microusd=0)
    await limiter.release(other)
    assert used(await limiter.reserve(scope="sub:1", budgets=[TPM, TPD], tokens=5, microusd=0)) == [10, 910 + 10]
    assert used(now_window) == [5, 1_215]


async def test_budgets_that_are_none_are_skipped_and_no_budget_admits_everything(limiter):
    plan = Plan(id=1, product_id=1, name="p", tokens_per_minute=500, monthly_budget_microusd=2_000_000)
    assert budgets_for_plan(plan) == [
        TokenBudget("tokens", 60, 500, "minute"),
        TokenBudget("microusd", 30 * 86_400, 2_000_000, "month"),
    ]
    full = Plan(id=1, product_id=1, name="p", tokens_per_minute=1, tokens_per_day=2, tokens_per_month=3)
    assert [(b.label, b.window_s) for b in budgets_for_plan(full)] == [
        ("tokens-minute", 60),
        ("tokens-day", 86_400),
        ("tokens-month", 2_592_000),
    ]
    free = await limiter.reserve(
        scope="sub:1", budgets=budgets_for_plan(Plan(id=1, product_id=1, name="p")), tokens=10**9, microusd=10**9
    )
    assert free.allowed
    assert free.usage == ()
    assert token_rate_limit_headers(free) == {}
    await limiter.settle(free, tokens=1, microusd=1)
    assert len(limiter) == 0  # nothing kept for a scope without budgets


async def test_20_concurrent_reservations_of_100_against_500_admit_exactly_5(limiter):
    reservations = await asyncio.gather(
        *(limiter.reserve(scope="sub:1", budgets=[TPM], tokens=100, microusd=0) for _ in range(20))
    )
    assert sum(r.allowed for r in reservations) == 5
    assert sorted(r.usage[0].used for r in reservations if r.allowed) == [100, 200, 300, 400, 500]


async def test_amounts_and_budgets_are_validated(limiter):
    with pytest.raises(ValueError, match="amounts must be >= 0"):
        await limiter.reserve(scope="sub:1", budgets=[TPM], tokens=-1, microusd=0)
    with pytest.raises(ValueError, match="bad budget"):
        TokenBudget("tokens", 60, -1, "minute")
    with pytest.raises(ValueError, match="bad budget"):
        TokenBudget("requests", 60, 1, "minute")  # type: ignore[arg-type]


async def test_idle_scopes_are_forgotten_and_memory_is_bounded(clock):
    limiter = MemoryTokenLimiter(clock=clock, max_scopes=3)
    for n in range(5):
        await limiter.reserve(scope=f"sub:{n}", budgets=[TPM], tokens=1, microusd=0)
    assert len(limiter) == 3
    clock.now += 60
    await limiter.reserve(scope="sub:new", budgets=[TPM], tokens=1, microusd=0)
    assert len(limiter) == 1


def test_keys_carry_the_scope_as_a_hash_tag_and_the_window_index():
    assert token_key("sub:7", TPM) == "gateway:tl:{sub:7}:tokens:60"
    assert token_key("sub:7", USD, 12) == "gateway:tl:{sub:7}:microusd:2592000:12"


async def test_headers_report_the_binding_token_window(limiter):
    admitted = await limiter.reserve(scope="sub:1", budgets=[TPM, TPD, USD], tokens=450, microusd=10)
    headers = token_rate_limit_headers(admitted)
    assert headers == {
        "RateLimit-Policy": '"tokens-minute";q=500;w=60, "tokens-day";q=2000;w=86400, '
        '"microusd-month";q=1000000;w=2592000',
        "X-RateLimit-Limit-Tokens": "500",
        "X-RateLimit-Remaining-Tokens": "50",
        "X-RateLimit-Reset-Tokens": "40s",
        "RateLimit": '"tokens-minute";r=50;t=40',
    }
    refused = await limiter.reserve(scope="sub:1", budgets=[TPM, TPD, USD], tokens=100, microusd=10)
    refused_headers = token_rate_limit_headers(refused)
    assert refused_headers["Retry-After"] == "40"
    assert refused_headers["X-RateLimit-Remaining-Tokens"] == "50"
    day = await limiter.reserve(scope="sub:2", budgets=[TPD], tokens=1, microusd=0)
    assert token_rate_limit_headers(day)["X-RateLimit-Reset-Tokens"] == "10h12m40s"


async def test_token_and_request_headers_combine_into_one_set(limiter):
    requests = MemoryLimiter().check_now(scope="sub:1", limits=[Limit(window_s=60, max_requests=0, name="minute")])
    tokens = await limiter.reserve(scope="sub:1", budgets=[TPD], tokens=2_001, microusd=0)
    headers = combine_rate_limit_headers(rate_limit_headers(requests), token_rate_limit_headers(tokens))
    assert headers["RateLimit-Policy"] == '"minute";q=0;w=60, "tokens-day";q=2000;w=86400'
    assert headers["RateLimit"].startswith('"minute";r=0;t=')
    assert '"tokens-day";r=2000;' in headers["RateLimit"]
    assert headers["Retry-After"] == "60"
