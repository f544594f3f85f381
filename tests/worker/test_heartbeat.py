"""Heartbeats: what they carry, where they go (a file, or Redis with a TTL), and that a
failing one is retried, never fatal."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis

from gateway_sync.contract import encode_snapshot, sha256_hex
from gateway_sync.worker.heartbeat import (
    FileHeartbeatSink,
    Heartbeat,
    RedisHeartbeatSink,
    WorkerIdentity,
    heartbeat_document,
)
from gateway_sync.worker.sources import redis_client
from gateway_sync.worker.state import CompiledSnapshot, SnapshotHolder
from tests.worker.snapshots import build_snapshot

pytestmark = pytest.mark.anyio

IDENTITY = WorkerIdentity(worker_id="w-1", host="box", pid=42, started_at=1000.0, mode="embedded")


def holder_at(version: int) -> SnapshotHolder:
    holder = SnapshotHolder()
    snapshot = build_snapshot(version)
    holder.swap(CompiledSnapshot.build(snapshot, sha256=sha256_hex(encode_snapshot(snapshot))), announced_at=None)
    return holder


def test_a_heartbeat_carries_identity_snapshot_errors_and_counters():
    holder = holder_at(3)
    holder.refuse(4, "snapshot 4 refused: checksum mismatch")
    document = heartbeat_document(IDENTITY, holder, now=2000.0)
    assert document == {
        "worker_id": "w-1",
        "host": "box",
        "pid": 42,
        "started_at": 1000.0,
        "mode": "embedded",
        "ready": True,
        "snapshot_version": 3,
        "snapshot_sha256": holder.current().sha256,  # type: ignore[union-attr]
        "source_generation": 30,
        "applied_at": holder.applied_at,
        "lag_s": None,
        "last_error": "snapshot 4 refused: checksum mismatch",
        "last_error_at": holder.last_error_at,
        "counters": {"applied": 1, "refused": 1, "source_errors": 0, "last_refused_version": 4},
        "sent_at": 2000.0,
    }
    json.dumps(document)


def test_before_any_snapshot_the_heartbeat_says_not_ready():
    document = heartbeat_document(IDENTITY, SnapshotHolder(), now=1.0)
    assert (document["ready"], document["snapshot_version"], document["snapshot_sha256"]) == (False, None, None)


async def test_the_file_heartbeat_is_replaced_whole_and_removed(tmp_path):
    sink = FileHeartbeatSink(tmp_path / "workers", "w-1")
    heartbeat = Heartbeat(IDENTITY, holder_at(1), sink, interval_s=10)
    assert await heartbeat.beat()
    assert json.loads((tmp_path / "workers" / "w-1.json").read_text())["snapshot_version"] == 1
    assert [p.name for p in (tmp_path / "workers").iterdir()] == ["w-1.json"], "no temporary file is left"
    await heartbeat.remove()
    assert not (tmp_path / "workers" / "w-1.json").exists()


class FlakySink:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[dict[str, object]] = []

    async def send(self, document: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Redis is away")
        self.sent.append(json.loads(document))

    async def remove(self) -> None:
        raise ConnectionError("still away")


async def test_a_failing_heartbeat_is_logged_once_and_retried(caplog):
    sink = FlakySink(failures=3)
    heartbeat = Heartbeat(IDENTITY, holder_at(1), sink, interval_s=0.01)
    task = asyncio.create_task(heartbeat.run())
    try:
        deadline = time.monotonic() + 5
        while len(sink.sent) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    failures = [r for r in caplog.records if "heartbeat not sent" in r.getMessage()]
    assert len(failures) == 1
    assert "ConnectionError: Redis is away" in failures[0].getMessage()
    await heartbeat.remove()  # logged, not raised


async def test_a_snapshot_change_is_reported_at_once_not_at_the_next_interval():
    holder = holder_at(1)
    sink = FlakySink(failures=0)
    heartbeat = Heartbeat(IDENTITY, holder, sink, interval_s=3600)
    task = asyncio.create_task(heartbeat.run())
    try:
        await asyncio.sleep(0.05)
        holder.refuse(2, "snapshot 2 refused: schema")
        deadline = time.monotonic() + 2
        while not sink.sent or sink.sent[-1]["last_error"] != "snapshot 2 refused: schema":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_redis_heartbeat_expires_after_three_intervals_and_joins_the_set(redis_url):
    client = redis_client(redis_url, client_name="test-heartbeat")
    inspector = redis.Redis.from_url(redis_url)
    try:
        heartbeat = Heartbeat(IDENTITY, holder_at(5), RedisHeartbeatSink(client, "w-1", ttl_s=6.0), interval_s=2)
        assert await heartbeat.beat()
        assert json.loads(inspector.get("gateway:workers:w-1"))["snapshot_version"] == 5  # type: ignore[arg-type]
        assert 5000 < inspector.pttl("gateway:workers:w-1") <= 6000
        assert inspector.smembers("gateway:workers") == {b"w-1"}
        await heartbeat.remove()
        assert inspector.exists("gateway:workers:w-1") == 0
        assert inspector.smembers("gateway:workers") == set()
    finally:
        await client.aclose()
        inspector.close()
