"""The Redis source against a real Redis (database 14): the latest pointer and payloads as
gateway_sync/announce.py stores them, announcements, and a listener that survives losing
its connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from gateway_sync.worker.loader import Outcome, SnapshotLoader
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.sources import RedisSnapshotSource, SourceError, redis_client
from gateway_sync.worker.state import SnapshotHolder
from tests.worker.snapshots import build_snapshot

pytestmark = pytest.mark.anyio

LISTENER = "test-worker:announcements"


@pytest.fixture
async def source(redis_url: str) -> AsyncIterator[RedisSnapshotSource]:
    client = redis_client(redis_url, client_name="test-worker")
    listen_client = redis_client(redis_url, client_name=LISTENER, retries=0)
    try:
        yield RedisSnapshotSource(client, listen_client=listen_client, backoff_s=(0.05, 0.2))
    finally:
        await client.aclose()
        await listen_client.aclose()


async def eventually(condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_the_latest_pointer_and_its_payload_are_read(source, redis_publisher):
    assert await source.latest() is None
    redis_publisher.publish(build_snapshot(4))
    sighting = await source.latest()
    assert sighting is not None
    assert (sighting.pointer.version, sighting.pointer.source_generation) == (4, 40)
    payload = await source.fetch(sighting.pointer)
    assert payload.startswith(b"{")


async def test_a_missing_payload_key_is_a_source_error(source, redis_publisher):
    redis_publisher.publish_payload(7, None, sha256="0" * 64, generation=70)
    sighting = await source.latest()
    assert sighting is not None
    with pytest.raises(SourceError, match=r"gateway:snapshot:7 is missing"):
        await source.fetch(sighting.pointer)


async def test_a_worker_keeps_its_snapshot_when_the_announced_payload_is_gone(source, redis_publisher, tmp_path):
    settings = WorkerSettings(snapshot_dir=tmp_path, worker_id="t", poll_interval_s=1)
    loader = SnapshotLoader(SnapshotHolder(), source, settings)
    redis_publisher.publish(build_snapshot(1))
    assert await loader.check() is Outcome.APPLIED
    redis_publisher.publish_payload(2, None, sha256="0" * 64, generation=20)
    assert await loader.check() is Outcome.SOURCE_ERROR
    assert loader.holder.version == 1
    assert (
        loader.holder.last_error
        == "snapshot 2 could not be fetched: gateway:snapshot:2 is missing (expired or deleted)"
    )


def _kill_listener(redis_url: str) -> int:
    admin = redis.Redis.from_url(redis_url)
    try:
        ids = [c["id"] for c in admin.client_list(_type="pubsub") if c.get("name") == LISTENER]
        for client_id in ids:
            admin.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        admin.close()


def _listening(redis_url: str) -> bool:
    admin = redis.Redis.from_url(redis_url)
    try:
        return any(c.get("name") == LISTENER for c in admin.client_list(_type="pubsub"))
    finally:
        admin.close()


async def test_announcements_are_applied_at_once_even_after_the_connection_is_cut(
    source, redis_publisher, redis_url, tmp_path
):
    # The poll would take an hour: every apply below comes from an announcement.
    settings = WorkerSettings(snapshot_dir=tmp_path, worker_id="t", poll_interval_s=3600)
    loader = SnapshotLoader(SnapshotHolder(), source, settings)
    redis_publisher.publish(build_snapshot(1))
    task = asyncio.create_task(loader.run())
    try:
        await eventually(lambda: loader.holder.version == 1)
        await eventually(lambda: _listening(redis_url))
        redis_publisher.publish(build_snapshot(2))
        await eventually(lambda: loader.holder.version == 2, timeout=1.0)

        assert _kill_listener(redis_url) == 1
        # Announced while the listener is cut off: caught by the check after it subscribes again.
        redis_publisher.publish(build_snapshot(3))
        await eventually(lambda: loader.holder.version == 3, timeout=3.0)
        await eventually(lambda: _listening(redis_url))
        redis_publisher.publish(build_snapshot(4))
        await eventually(lambda: loader.holder.version == 4, timeout=1.0)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_publisher_writes_what_the_announcer_writes(redis_publisher, redis_url):
    redis_publisher.publish(build_snapshot(3))
    inspector = redis.Redis.from_url(redis_url)
    try:
        assert sorted(inspector.scan_iter("gateway:*")) == [b"gateway:snapshot:3", b"gateway:snapshot:latest"]
        assert 0 < inspector.ttl("gateway:snapshot:3") <= 7 * 24 * 3600
    finally:
        inspector.close()
