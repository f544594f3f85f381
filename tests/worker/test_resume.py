"""Resumable streams in embedded mode (MemoryResumeStore), Last-Event-ID parsing and the
settings. The Redis store has the same tests in test_resume_redis.py. No Django."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

from gateway_sync.worker.resume import (
    MAX_SEQ,
    MemoryResumeStore,
    build_resume_store,
    parse_last_event_id,
)
from gateway_sync.worker.resume_redis import RedisResumeStore
from gateway_sync.worker.settings import WorkerSettings, WorkerSettingsError

pytestmark = pytest.mark.anyio

RID = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
APP, OUTSIDER = 7, 8


def sse(response_id: str, seq: int, text: str = "") -> bytes:
    body = text or f'{{"choices":[{{"delta":{{"content":"token {seq} "}}}}]}}'
    return f"id: {response_id}.{seq}\ndata: {body}\n\n".encode()


async def collect(replay):
    assert replay is not None
    return [event async for event in replay]


def memory(**kwargs) -> MemoryResumeStore:
    return MemoryResumeStore(**{"window_s": 60.0, "max_bytes": 1 << 20, **kwargs})


async def produce(store, response_id: str, count: int, *, app_id: int = APP, end: bool = True) -> list[bytes]:
    events = [sse(response_id, seq) for seq in range(count)]
    await store.begin(response_id, app_id=app_id)
    for seq, event in enumerate(events):
        await store.append(response_id, seq, event)
    if end:
        await store.end(response_id)
    return events


# -- Last-Event-ID -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{RID}.0", (RID, 0)),
        (f"{RID}.42", (RID, 42)),
        (f" {RID}.7 ", (RID, 7)),
        (f"{RID}.{MAX_SEQ - 1}", (RID, MAX_SEQ - 1)),
    ],
)
def test_a_last_event_id_of_ours_names_the_response_and_the_event(value, expected):
    assert parse_last_event_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        RID,
        f"{RID}.",
        f".{RID}",
        f"{RID}.-1",
        f"{RID}.+1",
        f"{RID}.01",
        f"{RID}.1.2",
        f"{RID}.1e3",
        f"{RID}.{MAX_SEQ}",
        f"{RID}.{'9' * 400}",
        f"{RID.upper()}.1",
        f"{RID[:-1]}g.1",
        f"{RID}0.1",
        f"{RID[:-1]}.1",
        f"{RID}.٣",  # a non-ASCII digit
        "chatcmpl-123.1",
    ],
)
def test_anything_else_is_not_a_last_event_id(value):
    assert parse_last_event_id(value) is None


# -- replaying ----------------------------------------------------------------------------


@pytest.mark.parametrize("after_seq", [-1, 0, 3, 8, 9, 50])
async def test_a_replay_gives_every_event_after_the_last_one_seen_once_and_in_order(after_seq):
    store = memory()
    events = await produce(store, RID, 10)
    assert await collect(await store.replay(RID, app_id=APP, after_seq=after_seq)) == events[after_seq + 1 :]


async def test_a_live_stream_is_followed_until_its_end_from_another_task():
    store = memory()
    events = [sse(RID, seq) for seq in range(40)]
    await store.begin(RID, app_id=APP)
    for seq in range(5):
        await store.append(RID, seq, events[seq])

    async def producer() -> None:
        for seq in range(5, 40):
            await asyncio.sleep(0.003)
            await store.append(RID, seq, events[seq])
        await store.end(RID)

    replay = await store.replay(RID, app_id=APP, after_seq=2)
    async with asyncio.TaskGroup() as group:
        group.create_task(producer())
        received = await collect(replay)
    assert received == events[3:]


async def test_a_replay_of_another_apps_response_or_an_unknown_one_is_none():
    store = memory()
    await produce(store, RID, 3)
    assert await store.replay(RID, app_id=OUTSIDER, after_seq=-1) is None
    assert await store.replay(OTHER, app_id=APP, after_seq=-1) is None


async def test_a_response_expires_a_window_after_its_last_write():
    store = memory(window_s=0.05)
    await produce(store, RID, 3)
    assert await store.replay(RID, app_id=APP, after_seq=-1) is not None
    await asyncio.sleep(0.08)
    assert await store.replay(RID, app_id=APP, after_seq=-1) is None
    assert (len(store), store.total_bytes) == (0, 0)


async def test_a_response_over_its_byte_cap_stops_being_buffered_and_cannot_be_resumed(caplog):
    store = memory(max_bytes=5 * len(sse(RID, 0)))
    await produce(store, RID, 8)
    assert await store.replay(RID, app_id=APP, after_seq=-1) is None
    assert store.total_bytes == 0
    assert "over RESUME_MAX_BYTES" in caplog.text


async def test_all_buffers_together_are_capped_least_recently_written_first():
    one = len(sse(RID, 0))
    store = memory(max_total_bytes=25 * one)
    ids = [f"{n:032x}" for n in range(3)]
    for response_id in ids:
        await produce(store, response_id, 10)
    assert store.total_bytes <= 25 * one
    assert await store.replay(ids[0], app_id=APP, after_seq=-1) is None
    for response_id in ids[1:]:
        assert len(await collect(await store.replay(response_id, app_id=APP, after_seq=-1))) == 10


async def test_an_event_out_of_order_makes_the_response_unavailable_rather_than_holed():
    store = memory()
    await store.begin(RID, app_id=APP)
    await store.append(RID, 0, sse(RID, 0))
    await store.append(RID, 2, sse(RID, 2))
    assert await store.replay(RID, app_id=APP, after_seq=-1) is None


async def test_a_replay_whose_producer_died_ends_after_the_idle_timeout():
    store = memory(idle_timeout_s=0.2)
    events = await produce(store, RID, 3, end=False)
    started = time.monotonic()
    assert await collect(await store.replay(RID, app_id=APP, after_seq=0)) == events[1:]
    assert 0.15 <= time.monotonic() - started < 1.0


async def test_a_follower_stops_when_its_response_is_evicted():
    store = memory(max_total_bytes=15 * len(sse(RID, 0)))
    await produce(store, RID, 5, end=False)
    replay = await store.replay(RID, app_id=APP, after_seq=4)

    async def crowd_out() -> None:
        await asyncio.sleep(0.01)
        await produce(store, OTHER, 14)

    async with asyncio.timeout(2), asyncio.TaskGroup() as group:
        group.create_task(crowd_out())
        assert await collect(replay) == []


async def test_memory_appends_take_microseconds():
    store = memory()
    events = [sse(RID, seq) for seq in range(1000)]
    await store.begin(RID, app_id=APP)
    started = time.perf_counter()
    for seq, event in enumerate(events):
        await store.append(RID, seq, event)
    elapsed = time.perf_counter() - started
    await store.end(RID)
    assert 1000 / elapsed > 50_000  # measured: about 1.2 million events/s


# -- settings ------------------------------------------------------------------------------


def test_resuming_is_on_for_five_minutes_and_four_mebibytes_by_default():
    settings = WorkerSettings.from_env({})
    assert (settings.resume_window_s, settings.resume_max_bytes) == (300.0, 4 * 1024 * 1024)
    assert isinstance(build_resume_store(settings), MemoryResumeStore)


async def test_with_redis_the_store_is_redis_and_a_zero_window_turns_resuming_off():
    settings = WorkerSettings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "RESUME_MAX_BYTES": "1000"})
    store = build_resume_store(settings)
    assert isinstance(store, RedisResumeStore)
    assert store.max_bytes == 1000
    await store.aclose()
    off = WorkerSettings.from_env({"RESUME_WINDOW_S": "0"})
    assert off.resume_window_s == 0
    assert build_resume_store(off) is None
    assert WorkerSettings.from_env({"RESUME_WINDOW_S": "2.5"}).resume_window_s == 2.5


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RESUME_WINDOW_S": "-1"}, "RESUME_WINDOW_S='-1': use a number of seconds between 0 (off) and 86400"),
        ({"RESUME_WINDOW_S": "inf"}, "RESUME_WINDOW_S='inf'"),
        ({"RESUME_WINDOW_S": "5m"}, "RESUME_WINDOW_S='5m' is not a number of seconds"),
        ({"RESUME_MAX_BYTES": "0"}, "RESUME_MAX_BYTES='0': use a positive number of bytes"),
        ({"RESUME_MAX_BYTES": "4MiB"}, "RESUME_MAX_BYTES='4MiB' is not a number of bytes"),
    ],
)
def test_a_bad_resume_setting_is_refused_with_the_variable_named(environ, message):
    with pytest.raises(WorkerSettingsError, match=re.escape(message)):
        WorkerSettings.from_env(environ)


def test_the_log_names_no_event_content(caplog):
    caplog.set_level(logging.DEBUG)
    store = memory(max_bytes=10)
    asyncio.run(produce(store, RID, 2))
    assert "token" not in caplog.text
