"""Heartbeats: how the fleet view (gateway_sync/fleet.py) learns each worker's state.

Every HEARTBEAT_INTERVAL_S, and at once after a snapshot is applied or refused, the worker
publishes one JSON document:

- with Redis, as the string ``gateway:workers:<worker_id>`` (expiring after three intervals,
  so a dead worker disappears) and its id in the set ``gateway:workers``;
- in embedded mode, as ``var/workers/<worker_id>.json``, written by rename.

A heartbeat that cannot be sent is logged and tried again at the next beat; it never stops
the worker. A worker that stops cleanly removes its heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis.asyncio

from gateway_sync.worker.state import SnapshotHolder

REDIS_WORKERS_SET = "gateway:workers"
REDIS_WORKER_KEY = "gateway:workers:{worker_id}"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    worker_id: str
    host: str
    pid: int
    started_at: float
    mode: str  # "embedded" or "redis"


def heartbeat_document(identity: WorkerIdentity, holder: SnapshotHolder, *, now: float) -> dict[str, object]:
    current = holder.current()
    return {
        "worker_id": identity.worker_id,
        "host": identity.host,
        "pid": identity.pid,
        "started_at": identity.started_at,
        "mode": identity.mode,
        "ready": current is not None,
        "snapshot_version": None if current is None else current.version,
        "snapshot_sha256": None if current is None else current.sha256,
        "source_generation": None if current is None else current.source_generation,
        "applied_at": holder.applied_at,
        "lag_s": holder.lag_s,
        "last_error": holder.last_error,
        "last_error_at": holder.last_error_at,
        "counters": holder.counters.as_dict(),
        "sent_at": now,
    }


class HeartbeatSink(Protocol):
    async def send(self, document: bytes) -> None: ...

    async def remove(self) -> None: ...


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``:
    a reader sees the old document or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FileHeartbeatSink:
    def __init__(self, directory: Path, worker_id: str) -> None:
        self.path = directory / f"{worker_id}.json"

    async def send(self, document: bytes) -> None:
        await asyncio.to_thread(write_atomically, self.path, document)

    async def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class RedisHeartbeatSink:
    def __init__(self, client: redis.asyncio.Redis, worker_id: str, *, ttl_s: float) -> None:
        self.client = client
        self.worker_id = worker_id
        self.key = REDIS_WORKER_KEY.format(worker_id=worker_id)
        self.ttl_ms = max(1000, round(ttl_s * 1000))

    async def send(self, document: bytes) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key, document, px=self.ttl_ms)
            pipe.sadd(REDIS_WORKERS_SET, self.worker_id)
            await pipe.execute()

    async def remove(self) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            pipe.srem(REDIS_WORKERS_SET, self.worker_id)
            await pipe.execute()


class Heartbeat:
    def __init__(
        self, identity: WorkerIdentity, holder: SnapshotHolder, sink: HeartbeatSink, *, interval_s: float
    ) -> None:
        self.identity = identity
        self.holder = holder
        self.sink = sink
        self.interval_s = interval_s
        self._failing = ""

    async def run(self) -> None:
        """Beat until cancelled, every interval and whenever the snapshot state changes."""
        while True:
            self.holder.changed.clear()
            await self.beat()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self.holder.changed.wait()

    async def beat(self) -> bool:
        """Send one heartbeat. False if it failed (logged once per distinct failure)."""
        document = heartbeat_document(self.identity, self.holder, now=time.time())
        try:
            await self.sink.send(json.dumps(document).encode())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if message != self._failing:
                log.warning("heartbeat not sent (%s); trying again every %.1f s", message, self.interval_s)
                self._failing = message
            return False
        if self._failing:
            log.info("heartbeats are sent again")
            self._failing = ""
        return True

    async def remove(self, *, timeout_s: float = 3.0) -> None:
        """Withdraw this worker's heartbeat (on a clean stop). Failures are only logged, and
        an unreachable Redis delays the stop by ``timeout_s`` at most."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.sink.remove()
        except Exception as exc:
            log.warning("heartbeat not removed: %r", exc)
