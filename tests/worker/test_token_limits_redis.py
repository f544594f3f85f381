"""The Redis token limiter against the machine's Redis (database 13, shared with
test_limits_redis.py under the same file lock; every test has its own scope): the
reserve/settle/release arithmetic, exact admission under concurrency from one process and
from two, the roll-over rule on Redis's clock, and Redis going away."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from gateway_sync.worker.limits import DAY_S, MINUTE_S, MONTH_S, limiter_redis_client
from gateway_sync.worker.token_limits import (
    MemoryTokenLimiter,
    RedisTokenLimiter,
    Reservation,
    TokenBudget,
    token_key,
    token_rate_limit_headers,
)
from tests.worker.conftest import locked_redis, redis_test_url
from tests.worker.private_redis import private_redis
from tests.worker.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

_base = urlsplit(redis_test_url(13))
REDIS_URL = redis_test_url(13)
ROOT = Path(__file__).resolve().parents[2]

TPM = TokenBudget("tokens", MINUTE_S, 500, "minute")
TPD = TokenBudget("tokens", DAY_S, 2_000, "day")
USD = TokenBudget("microusd", MONTH_S, 1_000_000, "month")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Database 13 without ``gateway:tl:*`` keys, for this test alone."""
    with locked_redis(13, "gateway:tl:*") as url:
        yield url


@pytest.fixture
def scope() -> str:
    return f"test:{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def limiter(redis_url: str) -> AsyncIterator[RedisTokenLimiter]:
    client = limiter_redis_client(redis_url, timeout_s=2.0)
    try:
        yield RedisTokenLimiter(client, fail_mode="closed")
    finally:
        await client.aclose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def used(reservation: Reservation) -> list[int]:
    return [u.used for u in reservation.usage]


async def _clear_of_boundary(seconds: float) -> None:
    """Wait for a new minute if the current one ends within ``seconds`` (Redis's clock is
    the machine's here), so a test's windows stay the same throughout."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        seconds_now, micros = client.time()
    finally:
        client.close()
    left = 60 - (seconds_now % 60 + micros / 1e6)
    if left < seconds:
        await asyncio.sleep(left + 0.05)


async def test_reserve_settle_and_release_add_up_in_every_window(limiter, scope):
    await _clear_of_boundary(3)
    budgets = [TPM, TPD, USD]
    first = await limiter.reserve(scope=scope, budgets=budgets, tokens=300, microusd=5_000)
    second = await limiter.reserve(scope=scope, budgets=budgets, tokens=100, microusd=1_000)
    assert (first.allowed, second.allowed, first.degraded) == (True, True, False)
    assert used(second) == [400, 400, 6_000]
    assert 0 < second.usage[0].reset_s <= 60
    await limiter.settle(first, tokens=42, microusd=700)
    await limiter.release(second)
    await limiter.release(second)  # once only
    after = await limiter.reserve(scope=scope, budgets=budgets, tokens=8, microusd=300)
    assert used(after) == [50, 50, 1_000]
    # Settled above the reservation: the window overshoots, then refuses even 1 token.
    await limiter.settle(after, tokens=600, microusd=300)
    refused = await limiter.reserve(scope=scope, budgets=budgets, tokens=1, microusd=0)
    assert (refused.allowed, refused.refused_by, used(refused)) == (False, TPM, [642, 642, 1_000])
    assert 0 < (refused.retry_after_s or 0) <= 60


async def test_a_refusal_adds_nothing_and_says_which_budget_and_when(limiter, scope):
    await _clear_of_boundary(3)
    small_day = TokenBudget("tokens", DAY_S, 520, "day")
    assert (await limiter.reserve(scope=scope, budgets=[TPM, small_day], tokens=480, microusd=0)).allowed
    refused = await limiter.reserve(scope=scope, budgets=[TPM, small_day], tokens=50, microusd=0)
    assert not refused.allowed
    assert refused.refused_by == small_day  # both refuse; the day waits longer
    assert 60 < (refused.retry_after_s or 0) <= DAY_S
    assert token_rate_limit_headers(refused)["RateLimit"].startswith('"tokens-day";r=40;')
    never = await limiter.reserve(scope=scope, budgets=[TPM, small_day], tokens=501, microusd=0)
    assert never.never
    assert never.retry_after_s == math.inf
    assert never.refused_by == TPM
    fits = await limiter.reserve(scope=scope, budgets=[TPM, small_day], tokens=20, microusd=0)
    assert used(fits) == [500, 500]


async def test_a_cost_only_budget_counts_micro_dollars(limiter, scope):
    first = await limiter.reserve(scope=scope, budgets=[USD], tokens=10**6, microusd=999_999)
    assert first.allowed
    assert not (await limiter.reserve(scope=scope, budgets=[USD], tokens=1, microusd=2)).allowed
    await limiter.settle(first, tokens=10**6, microusd=1_000_000)
    spent = await limiter.reserve(scope=scope, budgets=[USD], tokens=1, microusd=0)
    assert (spent.allowed, spent.refused_by, spent.never) == (False, USD, False)
    assert 0 < (spent.retry_after_s or 0) <= MONTH_S


async def test_no_budgets_admit_without_redis(scope):
    client = limiter_redis_client(f"redis://127.0.0.1:{_free_port()}/13", timeout_s=0.2)
    limiter = RedisTokenLimiter(client, fail_mode="closed")
    try:
        free = await limiter.reserve(scope=scope, budgets=[], tokens=10**9, microusd=10**9)
        await limiter.settle(free, tokens=1, microusd=1)
    finally:
        await client.aclose()
    assert (free.allowed, free.degraded, free.usage) == (True, False, ())
    assert not limiter.degraded


async def test_keys_are_per_window_index_and_expire_after_their_window(limiter, scope):
    reservation = await limiter.reserve(scope=scope, budgets=[TPM, USD], tokens=10, microusd=10)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for usage in reservation.usage:
            key = token_key(scope, usage.budget, usage.index)
            assert key == f"gateway:tl:{{{scope}}}:{usage.budget.unit}:{usage.budget.window_s}:{usage.index}"
            assert client.get(key) == b"10"
            assert 0 < client.pttl(key) <= usage.reset_s * 1000 + 1000
    finally:
        client.close()


async def test_a_settle_after_the_window_restarted_charges_only_the_windows_still_current(limiter, scope):
    second = TokenBudget("tokens", 1, 500, "second")
    await _clear_of_boundary(4)
    stream = await limiter.reserve(scope=scope, budgets=[second, TPD], tokens=400, microusd=0)
    await asyncio.sleep(stream.usage[0].reset_s + 0.05)  # the second restarts, the day goes on
    await limiter.settle(stream, tokens=900, microusd=0)
    after = await limiter.reserve(scope=scope, budgets=[second, TPD], tokens=10, microusd=0)
    assert after.usage[0].index > stream.usage[0].index
    assert used(after) == [10, 910]


async def test_20_concurrent_reservations_of_100_against_500_admit_exactly_5(redis_url, scope):
    clients = [limiter_redis_client(redis_url, timeout_s=5.0) for _ in range(4)]
    try:
        limiters = [RedisTokenLimiter(client, fail_mode="closed") for client in clients]
        reservations = await asyncio.gather(
            *(limiters[n % 4].reserve(scope=scope, budgets=[TPM], tokens=100, microusd=0) for n in range(20))
        )
    finally:
        for client in clients:
            await client.aclose()
    assert not any(r.degraded for r in reservations)
    assert sum(r.allowed for r in reservations) == 5
    assert sorted(used(r)[0] for r in reservations if r.allowed) == [100, 200, 300, 400, 500]
    assert all(r.refused_by == TPM for r in reservations if not r.allowed)


_WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    from gateway_sync.worker.limits import limiter_redis_client
    from gateway_sync.worker.token_limits import RedisTokenLimiter, TokenBudget

    async def main(url, scope):
        clients = [limiter_redis_client(url, timeout_s=5.0) for _ in range(3)]
        limiters = [RedisTokenLimiter(c, fail_mode="closed") for c in clients]
        budget = TokenBudget("tokens", 86_400, 20_000, "day")
        # Open the connections and load the script first, so both processes start warm.
        await asyncio.gather(
            *(limiters[n % 3].reserve(scope=scope + ":warm", budgets=[budget], tokens=1, microusd=0) for n in range(30))
        )
        # A barrier in Redis: both fire once both are warm, however slow either start was.
        await clients[0].incr(scope + ":ready")
        await clients[0].expire(scope + ":ready", 60)
        deadline = time.monotonic() + 30
        while int(await clients[0].get(scope + ":ready")) < 2:
            assert time.monotonic() < deadline, "the other process never got ready"
            await asyncio.sleep(0.001)

        async def one(n):
            await asyncio.sleep(n * 0.001)  # 150 concurrent reservations spread over 0.15 s
            return await limiters[n % 3].reserve(scope=scope, budgets=[budget], tokens=100, microusd=0)

        reservations = await asyncio.gather(*(one(n) for n in range(150)))
        for c in clients:
            await c.aclose()
        assert not any(r.degraded for r in reservations)
        print(sum(r.allowed for r in reservations))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_two_processes_sharing_a_scope_admit_exactly_the_budget(redis_url, scope):
    """300 reservations of 100 tokens from two processes against 20,000 a day: 200 in all.
    Each process makes 150, so however late one starts, both are admitted some."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER_SCRIPT, redis_url, scope],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    counts = []
    for process in processes:
        out, err = await asyncio.to_thread(process.communicate, timeout=60)
        assert process.returncode == 0, err
        counts.append(int(out.strip()))
    assert sum(counts) == 200, counts
    assert all(count >= 50 for count in counts), counts  # both really competed


async def test_the_scripts_are_loaded_again_after_a_script_flush(tmp_path, scope):
    """As after a Redis restart: on a Redis of the test's own, SCRIPT FLUSH, then a
    reservation and a settle each load their script again and go on exactly."""
    with private_redis(tmp_path / "redis") as server:
        client = limiter_redis_client(server.url, timeout_s=2.0)
        limiter = RedisTokenLimiter(client, fail_mode="closed")
        try:
            first = await limiter.reserve(scope=scope, budgets=[TPD], tokens=300, microusd=0)
            await client.script_flush()
            second = await limiter.reserve(scope=scope, budgets=[TPD], tokens=100, microusd=0)
            assert (second.allowed, used(second), second.degraded) == (True, [400], False)
            await client.script_flush()
            await limiter.settle(first, tokens=50, microusd=0)
            assert used(await limiter.reserve(scope=scope, budgets=[TPD], tokens=1, microusd=0)) == [151]
        finally:
            await client.aclose()


async def test_fail_open_uses_the_local_limiter_and_settles_there(scope, caplog):
    client = limiter_redis_client(f"redis://127.0.0.1:{_free_port()}/13", timeout_s=0.2)
    fallback = MemoryTokenLimiter()
    limiter = RedisTokenLimiter(client, fail_mode="open", fallback=fallback)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway_sync.worker.token_limits"):
            reservations = [await limiter.reserve(scope=scope, budgets=[TPM], tokens=100, microusd=0) for _ in range(7)]
            assert all(r.degraded for r in reservations)
            assert sum(r.allowed for r in reservations) == 5  # the budget still applies, locally
            await limiter.settle(reservations[0], tokens=10, microusd=0)
            await limiter.release(reservations[1])
            after = await limiter.reserve(scope=scope, budgets=[TPM], tokens=100, microusd=0)
    finally:
        await client.aclose()
    assert (after.allowed, after.degraded, used(after)) == (True, True, [410])
    assert limiter.degraded
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 1  # once per outage


async def test_fail_closed_refuses_everything_with_a_retry_after(scope):
    client = limiter_redis_client(f"redis://127.0.0.1:{_free_port()}/13", timeout_s=0.2)
    limiter = RedisTokenLimiter(client, fail_mode="closed")
    try:
        refused = await limiter.reserve(scope=scope, budgets=[TPM, USD], tokens=1, microusd=1)
        await limiter.release(refused)  # nothing to give back
    finally:
        await client.aclose()
    assert (refused.allowed, refused.degraded, refused.refused_by, refused.never) == (False, True, None, False)
    assert token_rate_limit_headers(refused) == {"Retry-After": "1"}


async def test_a_settle_while_redis_is_down_keeps_the_reservation(redis_url, scope, caplog):
    """Made in Redis, settled while Redis is away: the windows keep the reserved amount
    (conservative), the request is not failed, and the loss is logged."""
    proxy = TcpProxy((_base.hostname or "127.0.0.1", _base.port or 6379))
    proxy.start()
    client = limiter_redis_client(f"redis://127.0.0.1:{proxy.port}/13", timeout_s=0.3)
    limiter = RedisTokenLimiter(client, fail_mode="open", probe_interval_s=0.1)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway_sync.worker.token_limits"):
            first = await limiter.reserve(scope=scope, budgets=[TPD], tokens=300, microusd=0)
            assert (first.allowed, first.degraded) == (True, False)
            proxy.stop()
            await limiter.settle(first, tokens=10, microusd=0)
            assert limiter.degraded
            proxy.start()
            await asyncio.sleep(0.15)
            back = await limiter.reserve(scope=scope, budgets=[TPD], tokens=1, microusd=0)
    finally:
        proxy.stop()
        await client.aclose()
    assert (back.degraded, used(back)) == (False, [301])
    assert not limiter.degraded
    messages = [r.message for r in caplog.records]
    assert any("could not settle" in m for m in messages)
    assert len([m for m in messages if m.startswith("token limiter: Redis is back")]) == 1
