"""The Redis limiter against the machine's Redis (database 13, this file's alone): exact
under concurrency, within one process and across two; all-or-nothing across windows; and
the fail-open and fail-closed policies when Redis goes away and comes back."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gateway_sync.worker.limits import Limit, MemoryLimiter, RedisLimiter, limiter_redis_client, rate_limit_headers
from tests.worker.conftest import locked_redis, redis_test_url
from tests.worker.private_redis import private_redis
from tests.worker.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

_base = urlsplit(redis_test_url(13))
REDIS_URL = redis_test_url(13)
REDIS_ADDRESS = (_base.hostname or "127.0.0.1", _base.port or 6379)
ROOT = Path(__file__).resolve().parents[2]

SECOND = Limit(window_s=1, max_requests=10, name="second")
MINUTE = Limit(window_s=60, max_requests=100, name="minute")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Database 13 without ``gateway:rl:*`` keys, for this test alone."""
    with locked_redis(13, "gateway:rl:*") as url:
        yield url


@pytest.fixture
def scope() -> str:
    return f"test:{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def limiter(redis_url: str) -> AsyncIterator[RedisLimiter]:
    client = limiter_redis_client(redis_url, timeout_s=2.0)
    try:
        yield RedisLimiter(client, fail_mode="closed", fallback=MemoryLimiter())
    finally:
        await client.aclose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_500_concurrent_checks_over_several_connections_admit_exactly_100(redis_url, scope):
    clients = [limiter_redis_client(redis_url, timeout_s=5.0) for _ in range(4)]
    try:
        limiters = [RedisLimiter(client, fail_mode="closed") for client in clients]
        decisions = await asyncio.gather(*(limiters[n % 4].check(scope=scope, limits=[MINUTE]) for n in range(500)))
    finally:
        for client in clients:
            await client.aclose()
    assert sum(d.allowed for d in decisions) == 100
    assert not any(d.degraded for d in decisions)
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(100))
    refused = [d for d in decisions if not d.allowed]
    assert all(0 < (d.retry_after_s or 0) <= 60 for d in refused)
    assert int(rate_limit_headers(refused[0])["Retry-After"]) >= 1


_WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    from gateway_sync.worker.limits import Limit, RedisLimiter, limiter_redis_client

    async def main(url, scope):
        clients = [limiter_redis_client(url, timeout_s=5.0) for _ in range(3)]
        limiters = [RedisLimiter(c, fail_mode="closed") for c in clients]
        limit = Limit(window_s=60, max_requests=100, name="minute")
        # Open the connections and load the script first, so both processes start warm.
        await asyncio.gather(*(limiters[n % 3].check(scope=scope + ":warm", limits=[limit]) for n in range(60)))
        # A barrier in Redis: both fire once both are warm, however slow either start was.
        await clients[0].incr(scope + ":ready")
        await clients[0].expire(scope + ":ready", 60)
        deadline = time.monotonic() + 30
        while int(await clients[0].get(scope + ":ready")) < 2:
            assert time.monotonic() < deadline, "the other process never got ready"
            await asyncio.sleep(0.001)

        async def one(n):
            await asyncio.sleep(n * 0.001)  # 300 concurrent checks spread over 0.3 s
            return await limiters[n % 3].check(scope=scope, limits=[limit])

        decisions = await asyncio.gather(*(one(n) for n in range(300)))
        for c in clients:
            await c.aclose()
        assert not any(d.degraded for d in decisions)
        print(sum(d.allowed for d in decisions))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_two_processes_sharing_a_scope_admit_exactly_100_in_total(redis_url, scope):
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
    assert sum(counts) == 100, counts
    assert all(count > 0 for count in counts), counts  # both really competed


async def test_a_refused_request_consumes_nothing_in_any_window(limiter, scope):
    both = [SECOND, MINUTE]
    decisions = await asyncio.gather(*(limiter.check(scope=scope, limits=both) for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 10
    refused = [d for d in decisions if not d.allowed]
    assert all(d.limit == SECOND for d in refused)
    assert all(0 < (d.retry_after_s or 0) <= 1 for d in refused)
    minute_only = await limiter.check(scope=scope, limits=[MINUTE])
    assert minute_only.allowed
    assert minute_only.remaining == 100 - 11  # 10 + this one; the 40 refused cost nothing
    await asyncio.sleep(1.05)
    again = await limiter.check(scope=scope, limits=both)
    assert again.allowed
    assert again.limit == SECOND
    assert again.remaining == 9


async def test_cost_and_a_fixed_day_window(limiter, scope):
    day = Limit(window_s=86_400, max_requests=5, name="day")
    assert (await limiter.check(scope=scope, limits=[MINUTE, day], cost=3)).remaining == 2
    refused = await limiter.check(scope=scope, limits=[MINUTE, day], cost=3)
    assert not refused.allowed
    assert refused.limit == day
    assert 0 < (refused.retry_after_s or 0) <= 86_400
    allowed = await limiter.check(scope=scope, limits=[MINUTE, day], cost=2)
    assert allowed.allowed
    assert allowed.limit == day
    assert allowed.remaining == 0
    assert (await limiter.check(scope=scope, limits=[MINUTE])).remaining == 100 - 6


async def test_the_scripts_are_loaded_again_after_a_script_flush(tmp_path, scope):
    """As after a Redis restart: on a Redis of the test's own, SCRIPT FLUSH, then a check
    (pipelined) and a refund (direct) each load their script again and go on exactly."""
    with private_redis(tmp_path / "redis") as server:
        client = limiter_redis_client(server.url, timeout_s=2.0)
        limiter = RedisLimiter(client, fail_mode="closed")
        try:
            first = await limiter.check(scope=scope, limits=[MINUTE])
            await client.script_flush()
            second = await limiter.check(scope=scope, limits=[MINUTE])
            assert (second.allowed, second.remaining, second.degraded) == (True, 98, False)
            await client.script_flush()
            await limiter.refund(scope=scope, decision=first)
            assert (await limiter.check(scope=scope, limits=[MINUTE])).remaining == 98
        finally:
            await client.aclose()


async def test_concurrent_checks_share_pipelines_and_stay_exact(limiter, scope):
    """Checks made in one loop turn travel together; each still gets its own decision."""
    executed: list[int] = []
    pipeline = limiter.client.pipeline

    def counting_pipeline(*args, **kwargs):
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        async def counted(*a, **k):
            executed.append(len(pipe.command_stack))
            return await execute(*a, **k)

        pipe.execute = counted
        return pipe

    limiter.client.pipeline = counting_pipeline
    decisions = await asyncio.gather(*(limiter.check(scope=scope, limits=[MINUTE]) for _ in range(150)))
    assert sum(d.allowed for d in decisions) == 100
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(100))
    assert sum(executed) == 150
    assert len(executed) < 10, executed  # a few round trips, not 150


async def test_fail_open_uses_the_local_limiter(caplog):
    client = limiter_redis_client(f"redis://127.0.0.1:{_free_port()}/13", timeout_s=0.2)
    limiter = RedisLimiter(client, fail_mode="open", fallback=MemoryLimiter())
    try:
        with caplog.at_level(logging.WARNING, logger="gateway_sync.worker.limits"):
            decisions = [await limiter.check(scope="s", limits=[SECOND]) for _ in range(15)]
    finally:
        await client.aclose()
    assert all(d.degraded for d in decisions)
    assert sum(d.allowed for d in decisions) == 10  # the limits still apply, locally
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 1  # once per outage


async def test_fail_closed_refuses_everything():
    client = limiter_redis_client(f"redis://127.0.0.1:{_free_port()}/13", timeout_s=0.2)
    limiter = RedisLimiter(client, fail_mode="closed")
    try:
        decision = await limiter.check(scope="s", limits=[MINUTE])
    finally:
        await client.aclose()
    assert not decision.allowed
    assert decision.degraded
    assert (decision.retry_after_s or 0) > 0
    assert rate_limit_headers(decision)["Retry-After"] == "1"


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
async def test_recovery_when_redis_comes_back(redis_url, scope, fail_mode, caplog):
    proxy = TcpProxy(REDIS_ADDRESS)
    proxy.start()
    client = limiter_redis_client(f"redis://127.0.0.1:{proxy.port}/13", timeout_s=0.3)
    limiter = RedisLimiter(client, fail_mode=fail_mode, probe_interval_s=0.1)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway_sync.worker.limits"):
            first = await limiter.check(scope=scope, limits=[MINUTE])
            assert first.allowed
            assert not first.degraded
            proxy.stop()
            down = [await limiter.check(scope=scope, limits=[MINUTE]) for _ in range(5)]
            assert all(d.degraded for d in down)
            assert all(d.allowed for d in down) is (fail_mode == "open")
            assert limiter.degraded
            proxy.start()
            await asyncio.sleep(0.15)
            back = await limiter.check(scope=scope, limits=[MINUTE])
    finally:
        proxy.stop()
        await client.aclose()
    assert back.allowed
    assert not back.degraded
    assert not limiter.degraded
    # Redis counted only what it saw: the first and this one.
    assert back.remaining == 98
    messages = [r.message for r in caplog.records]
    assert len([m for m in messages if "unreachable" in m]) == 1
    assert len([m for m in messages if m.startswith("rate limiter: Redis is back")]) == 1


async def test_a_refund_gives_back_the_units_of_an_admitted_check_in_redis(limiter, scope):
    day = Limit(window_s=86_400, max_requests=1000, name="day")
    both = [MINUTE, day]  # a sliding log and a fixed window
    first = await limiter.check(scope=scope, limits=both, cost=3)
    kept = await limiter.check(scope=scope, limits=both)
    await limiter.refund(scope=scope, decision=first)
    after = await limiter.check(scope=scope, limits=both)
    assert (first.remaining, kept.remaining, after.remaining) == (97, 96, 98)
    refused = await limiter.check(scope=scope, limits=[Limit(window_s=60, max_requests=0, name="minute")])
    await limiter.refund(scope=scope, decision=refused)  # nothing to give back
    assert (await limiter.check(scope=scope, limits=both)).remaining == 97


async def test_a_refund_while_redis_is_down_goes_to_the_fallback(scope):
    client = limiter_redis_client(f"redis://127.0.0.1:{_free_port()}/0", timeout_s=0.2)
    limiter = RedisLimiter(client, fail_mode="open")
    try:
        first = await limiter.check(scope=scope, limits=[MINUTE])
        assert first.degraded
        await limiter.refund(scope=scope, decision=first)
        assert (await limiter.check(scope=scope, limits=[MINUTE])).remaining == 99
    finally:
        await client.aclose()
