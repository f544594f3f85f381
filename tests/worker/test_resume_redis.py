"""Resumable streams in Redis (RedisResumeStore), on the shared test Redis (database 14)
and, where Redis must fail, on a private one. No Django."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from gateway_sync.worker.resume import END_ID, meta_key, stream_key
from gateway_sync.worker.resume_redis import RedisResumeStore
from gateway_sync.worker.supervisor import BackgroundTasks
from tests.worker.private_redis import private_redis
from tests.worker.test_resume import APP, OTHER, OUTSIDER, RID, collect, produce, sse

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def running(url: str, **kwargs: float) -> AsyncIterator[RedisResumeStore]:
    """A store with its background writer, as the worker's lifespan runs it."""
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=3.0)
    store = RedisResumeStore(client, **{"window_s": 60.0, "max_bytes": 1 << 20, **kwargs})  # type: ignore[arg-type]
    tasks = BackgroundTasks()
    tasks.start("resume-store", store.run)
    try:
        yield store
    finally:
        await tasks.stop()
        await store.aclose()


async def settled(store: RedisResumeStore) -> None:
    """Wait until the writer has sent what is queued."""
    while store._queue or store._to_delete:
        await asyncio.sleep(0.001)
    await store.flush()


@pytest.mark.parametrize("after_seq", [-1, 0, 3, 9, 50])
async def test_a_replay_gives_every_event_after_the_last_one_seen_once_and_in_order(redis_url, after_seq):
    async with running(redis_url) as store:
        events = await produce(store, RID, 10)
        await settled(store)
        assert await collect(await store.replay(RID, app_id=APP, after_seq=after_seq)) == events[after_seq + 1 :]


async def test_a_response_is_one_stream_and_a_small_hash_both_expiring_with_the_window(redis_url):
    async with running(redis_url, window_s=30.0) as store:
        await produce(store, RID, 3)
        await settled(store)
        client = store.client
        assert await client.hgetall(meta_key(RID)) == {b"app": str(APP).encode()}
        entries = await client.xrange(stream_key(RID))
        assert [entry_id for entry_id, _ in entries] == [b"0-1", b"0-2", b"0-3", END_ID.encode()]
        assert entries[1][1] == {b"d": sse(RID, 1)}
        for key in (stream_key(RID), meta_key(RID)):
            assert 29_000 < await client.pttl(key) <= 30_000


async def test_a_live_stream_is_followed_from_another_task_until_exactly_its_end(redis_url):
    async with running(redis_url) as store:
        events = [sse(RID, seq) for seq in range(60)]
        await store.begin(RID, app_id=APP)
        for seq in range(5):
            await store.append(RID, seq, events[seq])
        await settled(store)
        ended_at = 0.0

        async def producer() -> None:
            nonlocal ended_at
            for seq in range(5, 60):
                await asyncio.sleep(0.005)
                await store.append(RID, seq, events[seq])
            await store.end(RID)
            ended_at = time.monotonic()

        replay = await store.replay(RID, app_id=APP, after_seq=2)
        async with asyncio.TaskGroup() as group:
            group.create_task(producer())
            received = await collect(replay)
        assert received == events[3:]
        assert time.monotonic() - ended_at < 0.5  # woken by the end, not by a timeout


async def test_a_replay_of_another_apps_response_or_an_unknown_one_is_none(redis_url):
    async with running(redis_url) as store:
        await produce(store, RID, 3)
        await settled(store)
        assert await store.replay(RID, app_id=OUTSIDER, after_seq=-1) is None
        assert await store.replay(OTHER, app_id=APP, after_seq=-1) is None


async def test_a_response_expires_a_window_after_its_last_write(redis_url):
    async with running(redis_url, window_s=0.2) as store:
        await produce(store, RID, 3)
        await settled(store)
        assert await store.replay(RID, app_id=APP, after_seq=-1) is not None
        await asyncio.sleep(0.35)
        assert await store.replay(RID, app_id=APP, after_seq=-1) is None


async def test_a_response_over_its_byte_cap_stops_being_buffered_and_cannot_be_resumed(redis_url, caplog):
    async with running(redis_url, max_bytes=5 * len(sse(RID, 0))) as store:
        await produce(store, RID, 8)
        await produce(store, OTHER, 4)
        await settled(store)
        assert await store.replay(RID, app_id=APP, after_seq=-1) is None
        assert not await store.client.exists(stream_key(RID), meta_key(RID))
        assert len(await collect(await store.replay(OTHER, app_id=APP, after_seq=-1))) == 4
        assert "over RESUME_MAX_BYTES" in caplog.text


async def test_a_replay_whose_producer_died_ends_after_the_idle_timeout(redis_url):
    async with running(redis_url, idle_timeout_s=0.5) as store:
        events = await produce(store, RID, 3, end=False)
        await settled(store)
        started = time.monotonic()
        assert await collect(await store.replay(RID, app_id=APP, after_seq=0)) == events[1:]
        assert 0.45 <= time.monotonic() - started < 2.0


async def test_a_stream_with_a_hole_is_not_replayed(redis_url):
    async with running(redis_url) as store:
        await produce(store, RID, 6)
        await settled(store)
        await store.client.xdel(stream_key(RID), "0-3")  # as if event 2 were lost
        assert await store.replay(RID, app_id=APP, after_seq=0) is None
        assert await collect(await store.replay(RID, app_id=APP, after_seq=2)) == [sse(RID, seq) for seq in (3, 4, 5)]


async def test_while_redis_is_down_the_stream_goes_on_and_cannot_be_resumed(tmp_path, caplog):
    with private_redis(tmp_path / "redis") as server:
        async with running(server.url) as store:
            events = [sse(RID, seq) for seq in range(20)]
            await store.begin(RID, app_id=APP)
            for seq in range(10):
                await store.append(RID, seq, events[seq])
            await settled(store)
            server.stop()
            started = time.perf_counter()
            for seq in range(10, 20):
                await store.append(RID, seq, events[seq])
                await asyncio.sleep(0.01)  # loop turns: the writer tries and fails meanwhile
            await store.end(RID)
            assert time.perf_counter() - started < 0.5  # the producer never waited on Redis
            assert await store.replay(RID, app_id=APP, after_seq=-1) is None
            assert caplog.text.count("resume store: Redis failed") == 1
            # Back again: the half-written response is removed, not replayed with a hole.
            server.start()
            await asyncio.sleep(1.1)
            await produce(store, OTHER, 2)
            await settled(store)
            assert await store.replay(RID, app_id=APP, after_seq=-1) is None
            assert len(await collect(await store.replay(OTHER, app_id=APP, after_seq=-1))) == 2


async def test_a_thousand_chunk_stream_is_appended_without_waiting_and_replayed_whole(redis_url):
    async with running(redis_url) as store:
        events = [sse(RID, seq) for seq in range(1000)]
        await store.begin(RID, app_id=APP)
        started = time.perf_counter()
        for seq, event in enumerate(events):
            await store.append(RID, seq, event)
            if seq % 10 == 9:
                await asyncio.sleep(0)  # a proxy yields to the loop as it writes to the client
        appended = time.perf_counter() - started
        await store.end(RID)
        await settled(store)
        stored = time.perf_counter() - started
        assert await collect(await store.replay(RID, app_id=APP, after_seq=-1)) == events
        # Measured on the 2-core VM: ~56,000 events/s (the writer's pipelines included, as
        # they share the loop), all in Redis after ~18 ms. Loose bounds: CI machines vary.
        assert 1000 / appended > 5_000
        assert stored < 2.0
