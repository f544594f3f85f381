"""The worker's usage emitter: one valid event per request, batched to the spool folder
(embedded mode) or the Redis stream, with a file backlog while Redis is away. No Django."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec
import pytest
import redis
import redis.asyncio
from aiohttp import web

from demo_upstreams.inprocess import serve_aiohttp
from gateway_sync.contract import schema as s
from gateway_sync.contract.usage import PATH_MAX_CHARS, decode_event, encode_event
from gateway_sync.worker.proxy_rest import register_rest_proxy
from gateway_sync.worker.record import LIMIT_ALLOWED, LIMIT_LIMITED, RequestRecord
from gateway_sync.worker.usage_emitter import (
    EVENT_FIELD,
    USAGE_EMITTER_KEY,
    RedisStreamSink,
    SpoolFolder,
    SpoolSink,
    UsageEmitter,
    register_usage_emitter,
    usage_event,
)
from tests.worker.private_redis import private_redis
from tests.worker.processes import free_port
from tests.worker.test_rest_proxy import GOOD, bearer, gateway, settings_for, world

pytestmark = pytest.mark.anyio

STREAM = "gateway:usage"


def spooled(directory: Path) -> list[dict]:
    """Every event in the complete spool files of ``directory``, oldest file first."""
    events = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            events.append(decode_event(line))
    return events


def record(number: int = 0, **fields) -> RequestRecord:
    return RequestRecord(protocol="rest", method="GET", path=f"/api/echo/{number}", status=200, **fields)


def test_an_event_stays_within_the_contract():
    long = RequestRecord(protocol="rest", method="PROPFIND-EXTENDED-X", path="/api/x/" + "a\x00" * 600)
    long.guardrail_actions = [f"action-{n}-" + "x" * 50 for n in range(30)]
    long.finish()
    event = decode_event(encode_event(usage_event(long, "w-1")))
    assert event.status == 499  # no response was sent: the client went away
    assert len(event.path) <= PATH_MAX_CHARS
    assert "\x00" not in event.path
    assert len(event.method) <= 16
    assert len(event.guardrail_actions) == 20
    assert all(len(a) <= 40 for a in event.guardrail_actions)
    assert event.is_error is False  # the client's doing, not an error of the gateway's
    assert len(event.event_id) == 32


def test_event_ids_are_unique():
    ids = {usage_event(record(), "w").event_id for _ in range(10_000)}
    assert len(ids) == 10_000


async def test_requests_through_the_proxy_each_leave_one_event_in_the_spool(tmp_path, echo_a, echo_b):
    settings = settings_for(tmp_path, usage_spool_dir=tmp_path / "usage", usage_flush_interval_s=0.05)
    app_registrars = [register_rest_proxy, register_usage_emitter]
    async with gateway(settings, world(settings, echo_a, echo_b), registrars=app_registrars) as client:
        ok = await client.post("/api/echo/things?x=1", data=b"0123456789", headers=bearer())
        assert ok.status == 200
        await ok.read()
        assert (await client.get("/api/echo/x", headers=bearer("sk-wrong"))).status == 401
        assert (await client.get("/api/nope/x", headers=bearer())).status == 404
        for _ in range(4):  # the plan "Tiny" admits 3 per minute
            await client.get("/api/raw/get", headers=bearer())
        emitter = client.app[USAGE_EMITTER_KEY]
        await emitter.flush()
    events = spooled(tmp_path / "usage")
    assert len(events) == 7
    by_path = {(e.path, e.status): e for e in events}
    first = by_path[("/api/echo/things", 200)]
    assert (first.app_id, first.key_prefix, first.product_id, first.product_slug) == (7, "sk-good", 1, "echo")
    assert (first.version_id, first.route_id, first.target_id, first.method) == (1, 1, 1, "POST")
    assert (first.bytes_in, first.limit_decision, first.worker_id, first.is_error) == (
        10,
        LIMIT_ALLOWED,
        "proxy-test",
        False,
    )
    assert first.bytes_out > 0
    assert first.latency_ms > 0
    anonymous = by_path[("/api/echo/x", 401)]
    assert (anonymous.app_id, anonymous.product_id) == (None, 1)
    assert anonymous.bytes_out > 0
    assert by_path[("/api/nope/x", 404)].product_id is None
    raw = [e for e in events if e.product_slug == "raw"]
    assert [e.status for e in raw] == [200, 200, 200, 429]
    assert raw[-1].limit_decision == LIMIT_LIMITED
    assert (raw[0].route_id, raw[0].target_id) == (None, None)
    assert len({e.event_id for e in events}) == 7


async def test_a_clean_stop_writes_what_is_buffered(tmp_path, echo_a, echo_b):
    settings = settings_for(tmp_path, usage_spool_dir=tmp_path / "usage", usage_flush_interval_s=3600)
    async with gateway(
        settings, world(settings, echo_a, echo_b), registrars=[register_rest_proxy, register_usage_emitter]
    ) as client:
        for _ in range(5):
            assert (await client.get("/api/echo/a", headers=bearer())).status == 200
        assert client.app[USAGE_EMITTER_KEY].pending == 5
        assert spooled(tmp_path / "usage") == []
    assert len(spooled(tmp_path / "usage")) == 5


async def test_a_spool_that_cannot_be_written_keeps_the_events_until_it_can(tmp_path):
    blocked = tmp_path / "usage"
    blocked.write_text("a file where the folder should be")
    emitter = UsageEmitter(SpoolSink(SpoolFolder(blocked, "w")), worker_id="w", flush_interval_s=3600)
    for number in range(3):
        emitter.observe(record(number))
    await emitter.flush()
    assert emitter.pending == 3
    blocked.unlink()
    emitter.observe(record(3))
    await emitter.flush()
    assert emitter.pending == 0
    assert [e.path for e in spooled(blocked)] == [f"/api/echo/{n}" for n in range(4)]


async def test_a_cancelled_flush_keeps_its_batch(tmp_path):
    class SlowSink(SpoolSink):
        async def write(self, lines):
            await asyncio.sleep(10)
            return True

    emitter = UsageEmitter(SlowSink(SpoolFolder(tmp_path, "w")), worker_id="w", flush_interval_s=3600)
    emitter.observe(record())
    task = asyncio.create_task(emitter.flush())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert emitter.pending == 1


async def test_batches_go_to_the_redis_stream(tmp_path, redis_url):
    client = redis.asyncio.Redis.from_url(redis_url)
    sink = RedisStreamSink(client, stream=STREAM, maxlen=10_000, backlog=SpoolFolder(tmp_path / "backlog", "w"))
    emitter = UsageEmitter(sink, worker_id="w", flush_interval_s=3600)
    for number in range(250):
        emitter.observe(record(number))
    await emitter.aclose()
    check = redis.Redis.from_url(redis_url)
    try:
        entries = check.xrange(STREAM)
    finally:
        check.close()
    assert [decode_event(fields[EVENT_FIELD.encode()]).path for _id, fields in entries] == [
        f"/api/echo/{n}" for n in range(250)
    ]
    assert not list((tmp_path / "backlog").glob("*"))


async def test_while_redis_is_away_events_wait_in_the_backlog_then_replay_in_order(tmp_path):
    with private_redis(tmp_path / "redis") as server:
        client = redis.asyncio.Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=1)
        backlog = SpoolFolder(tmp_path / "backlog", "w")
        sink = RedisStreamSink(client, stream=STREAM, maxlen=10_000, backlog=backlog)
        emitter = UsageEmitter(sink, worker_id="w", flush_interval_s=3600)
        emitter.observe(record(0))
        await emitter.flush()
        server.stop()
        for number in range(1, 4):
            emitter.observe(record(number))
            await emitter.flush()  # Redis refuses: each batch goes to a backlog file
        assert sink.redis_down
        assert emitter.pending == 0
        assert len(list(backlog.directory.glob("*.jsonl"))) == 3
        await sink.maintain()  # within the probe interval: Redis is not tried again
        server.start()
        sink._next_probe = 0  # the probe interval has passed
        emitter.observe(record(4))
        await emitter.flush()  # queued behind the backlog, to keep the stream in order
        await sink.maintain()
        assert not sink.redis_down
        assert not list(backlog.directory.iterdir())
        await emitter.aclose()
        check = redis.Redis.from_url(server.url)
        try:
            paths = [decode_event(f[b"e"]).path for _i, f in check.xrange(STREAM)]
        finally:
            check.close()
    assert paths == [f"/api/echo/{n}" for n in range(5)]


def test_claims_of_a_dead_process_are_released(tmp_path):
    folder = SpoolFolder(tmp_path, "w")
    written = folder.write([b"{}"])
    claimed = folder.claim_oldest()
    assert claimed is not None
    assert claimed.name == f"{written.name}.replaying-{os.getpid()}"
    assert folder.claim_oldest() is None  # claimed files are not offered twice
    dead = claimed.with_name(f"{written.name}.replaying-999999999")
    claimed.rename(dead)
    folder.release_dead_claims()
    assert [p.name for p in tmp_path.iterdir()] == [written.name]


async def test_redis_that_never_answers_costs_the_request_path_nothing(tmp_path, echo_a, echo_b):
    """The limiter fails open and the emitter writes to its backlog; requests still pass."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_for(
        tmp_path,
        redis_url=dead_redis,
        usage_backlog_dir=tmp_path / "backlog",
        usage_flush_interval_s=0.05,
    )
    registrars = [register_rest_proxy, register_usage_emitter]
    async with gateway(settings, world(settings, echo_a, echo_b), registrars=registrars) as client:
        for _ in range(3):
            assert (await client.get("/api/echo/a", headers=bearer())).status == 200
    assert len(spooled(tmp_path / "backlog")) == 3


async def test_the_flusher_stops_when_cancelled_just_as_a_batch_fills(tmp_path):
    """The cancellation at shutdown may meet the "batch full" wake-up in one loop turn; it
    must still stop the task (asyncio.wait_for on Python 3.11 lost it, hanging the stop)."""
    for _attempt in range(20):
        emitter = UsageEmitter(
            SpoolSink(SpoolFolder(tmp_path, "w")), worker_id="w", flush_interval_s=3600, batch_size=1
        )
        task = asyncio.create_task(emitter.run())
        await asyncio.sleep(0)  # the task now waits for a full batch
        emitter.observe(record())  # wakes it...
        task.cancel()  # ...in the same turn as the stop
        done, _pending = await asyncio.wait({task}, timeout=2)
        assert task in done, "the flusher ignored its cancellation"
        assert task.cancelled()


async def test_a_client_leaving_mid_stream_is_a_499_not_a_gateway_error(tmp_path, echo_a, echo_b, caplog):
    async def slow_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for number in range(200):
                await response.write(b"chunk %d\n" % number)
                await asyncio.sleep(0.01)
        except ConnectionError:  # the gateway hung up on it: expected here
            pass
        return response

    upstream = web.Application()
    upstream.router.add_get("/slow", slow_stream)
    settings = settings_for(tmp_path, usage_spool_dir=tmp_path / "usage", usage_flush_interval_s=0.05)
    with serve_aiohttp(upstream) as slow_url:
        snapshot = world(settings, slow_url, echo_b)  # product "echo" routes to slow_url/anything/base
        raw = msgspec.structs.replace(
            snapshot,
            products=tuple(
                msgspec.structs.replace(p, upstream=s.Upstream(url=slow_url)) if p.slug == "raw" else p
                for p in snapshot.products
            ),
        )
        async with gateway(settings, raw, registrars=[register_rest_proxy, register_usage_emitter]) as client:
            reader, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(
                b"GET /api/raw/slow HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + GOOD.encode() + b"\r\n\r\n"
            )
            await writer.drain()
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            await reader.readuntil(b"chunk 1\n")
            writer.close()
            deadline = asyncio.get_running_loop().time() + 10
            while not spooled(tmp_path / "usage"):
                assert asyncio.get_running_loop().time() < deadline, "no usage event"
                await asyncio.sleep(0.05)
    [event] = spooled(tmp_path / "usage")
    assert (event.status, event.product_slug, event.is_error) == (499, "raw", False)
    assert 0 < event.bytes_out < 200 * 8
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
