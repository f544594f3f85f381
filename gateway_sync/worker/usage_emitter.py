"""Usage events out of the worker: one per request, batched, never lost, never waited on.

``UsageEmitter.observe`` (a ``RequestObserver``) turns a finished request's record into a
``UsageEvent`` (gateway_sync/contract/usage.py), encodes it and appends it to a list: that
is all the request path pays. A background task writes the list out every
``USAGE_FLUSH_INTERVAL_S`` (sooner once a batch is full) to a sink:

- **Embedded mode** (``SpoolSink``): a JSON-lines file in ``USAGE_SPOOL_DIR``, written as
  ``name.jsonl.tmp`` and renamed, which the portal ingests and deletes (consumers/usage.py).
- **Production** (``RedisStreamSink``): one ``XADD gateway:usage MAXLEN ~ N * e <event>`` per
  event, pipelined. When Redis cannot take a batch, the batch goes to a backlog file in
  ``USAGE_BACKLOG_DIR`` (same format) and Redis is probed again every second; once it
  answers, the backlog is replayed oldest first and each file deleted only after its
  events are in the stream. A batch half-written when Redis failed is written again in
  full: delivery is at least once, and the portal drops doubles by ``event_id``.

When even the disk refuses a batch, it stays in memory and is retried; past
``MAX_BUFFERED`` events the oldest are dropped and counted (``dropped``), so a worker
cannot run out of memory. On shutdown the buffer is flushed (to the backlog if Redis is
down), so a clean stop loses nothing.

Several processes on one host may share the backlog folder: a replayer first claims a
file by renaming it to ``*.replaying-<pid>``, so two never send the same file; a claim
left by a process that died is released at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Protocol

import redis.asyncio
from aiohttp import web
from redis.exceptions import RedisError

from gateway_sync.contract.usage import PATH_MAX_CHARS, UsageEvent, encode_event
from gateway_sync.worker.app import OBSERVERS_KEY, SETTINGS_KEY
from gateway_sync.worker.ids import new_id
from gateway_sync.worker.record import RequestRecord
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.supervisor import BackgroundTasks

log = logging.getLogger(__name__)

EVENT_FIELD = "e"
BATCH_SIZE = 1_000
MAX_BUFFERED = 500_000
REDIS_PROBE_INTERVAL_S = 1.0
# XADDs per pipeline round trip when replaying a backlog file.
REPLAY_CHUNK = 1_000
# nginx's code for "the client closed the connection before a response was sent".
CLIENT_CLOSED = 499
_CLAIM = re.compile(r"^(?P<name>.+\.jsonl)\.replaying-(?P<pid>\d+)$")


def usage_event(record: RequestRecord, worker_id: str) -> UsageEvent:
    """The event for a finished request, within the contract's bounds."""
    status = record.status if 100 <= record.status <= 599 and not record.client_closed else CLIENT_CLOSED
    return UsageEvent(
        event_id=new_id(),
        at=record.at,
        worker_id=worker_id,
        app_id=record.app_id,
        key_prefix=record.key_prefix[:16],
        product_id=record.product_id,
        product_slug=record.product_slug[:100],
        version_id=record.version_id,
        route_id=record.route_id,
        target_id=record.target_id,
        protocol=record.protocol,
        method=record.method[:16],
        path=record.path.replace("\x00", "")[:PATH_MAX_CHARS],
        status=status,
        latency_ms=round(record.duration_s * 1000, 3),
        bytes_in=record.bytes_in,
        bytes_out=record.bytes_out,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        tokens_estimated=record.tokens_estimated,
        cost_microusd=record.cost_microusd,
        tool_name=record.tool_name[:200] if record.tool_name else record.tool_name,
        is_error=record.is_error or status >= 500,
        guardrail_actions=tuple(action[:40] for action in record.guardrail_actions[:20]),
        limit_decision=record.limit_decision[:40],
    )


class UsageSink(Protocol):
    async def write(self, lines: Sequence[bytes]) -> bool:
        """Store one batch of encoded events durably; False if it could not (keep it)."""

    async def maintain(self) -> None:
        """Periodic upkeep between flushes (replaying a backlog)."""

    async def aclose(self) -> None: ...


class SpoolFolder:
    """JSON-lines files, each complete once it has its ``.jsonl`` name."""

    def __init__(self, directory: Path, worker_id: str) -> None:
        self.directory = directory
        self.worker_id = worker_id
        self._sequence = itertools.count()

    def write(self, lines: Sequence[bytes]) -> Path:
        """Blocking: call it in a thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # Names sort by time, so readers take the oldest first.
        name = f"{time.time_ns():020d}-{self.worker_id}-{os.getpid()}-{next(self._sequence):06d}.jsonl"
        path = self.directory / name
        temporary = path.with_name(name + ".tmp")
        with temporary.open("wb") as file:
            file.write(b"".join(line + b"\n" for line in lines))
            file.flush()
            os.fsync(file.fileno())
        temporary.rename(path)
        return path

    def release_dead_claims(self) -> None:
        """Files a dead process had claimed for replay become plain backlog files again."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            match = _CLAIM.match(path.name)
            if match and not _process_alive(int(match["pid"])):
                with contextlib.suppress(FileNotFoundError):
                    path.rename(path.with_name(match["name"]))

    def claim_oldest(self) -> Path | None:
        """Take the oldest complete file for this process, or None."""
        if not self.directory.is_dir():
            return None
        for path in sorted(self.directory.glob("*.jsonl")):
            claimed = path.with_name(f"{path.name}.replaying-{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:  # another process took it
                continue
            return claimed
        return None

    @staticmethod
    def unclaim(claimed: Path) -> None:
        match = _CLAIM.match(claimed.name)
        if match:
            claimed.rename(claimed.with_name(match["name"]))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SpoolSink:
    """Embedded mode: batches become files the portal ingests."""

    def __init__(self, folder: SpoolFolder) -> None:
        self.folder = folder
        self._failing = False

    async def write(self, lines: Sequence[bytes]) -> bool:
        try:
            await asyncio.to_thread(self.folder.write, lines)
        except OSError as exc:
            if not self._failing:
                log.error("usage events cannot be written to %s: %s; kept in memory", self.folder.directory, exc)
            self._failing = True
            return False
        if self._failing:
            log.warning("usage events are written to %s again", self.folder.directory)
        self._failing = False
        return True

    async def maintain(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class RedisStreamSink:
    """Production: the Redis stream, with a file backlog while Redis is away."""

    def __init__(
        self, client: redis.asyncio.Redis, *, stream: str, maxlen: int, backlog: SpoolFolder, owns_client: bool = True
    ) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.backlog = backlog
        self.owns_client = owns_client
        self.redis_down = False
        self._next_probe = 0.0
        backlog.release_dead_claims()

    async def _send(self, lines: Sequence[bytes]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for line in lines:
            pipe.xadd(self.stream, {EVENT_FIELD: line}, maxlen=self.maxlen, approximate=True)
        await pipe.execute()

    def _mark_down(self, exc: BaseException) -> None:
        if not self.redis_down:
            log.error("usage stream unavailable (%r): events go to the backlog in %s", exc, self.backlog.directory)
        self.redis_down = True
        self._next_probe = time.monotonic() + REDIS_PROBE_INTERVAL_S

    def _may_try_redis(self) -> bool:
        return not self.redis_down or time.monotonic() >= self._next_probe

    async def write(self, lines: Sequence[bytes]) -> bool:
        # While a backlog waits, new batches queue behind it, so the stream stays in order.
        if self._may_try_redis() and not self._backlog_waiting():
            try:
                await self._send(lines)
            except (RedisError, OSError) as exc:
                self._mark_down(exc)
            else:
                self._mark_up()
                return True
        try:
            await asyncio.to_thread(self.backlog.write, lines)
        except OSError as exc:
            log.error("usage backlog %s cannot be written: %s; kept in memory", self.backlog.directory, exc)
            return False
        return True

    def _mark_up(self) -> None:
        if self.redis_down:
            log.warning("usage stream reachable again")
        self.redis_down = False

    def _backlog_waiting(self) -> bool:
        directory = self.backlog.directory
        return directory.is_dir() and any(directory.glob("*.jsonl"))

    async def maintain(self) -> None:
        """Replay backlog files, oldest first, while Redis takes them."""
        while self._may_try_redis():
            claimed = await asyncio.to_thread(self.backlog.claim_oldest)
            if claimed is None:
                return
            try:
                lines = [line for line in claimed.read_bytes().splitlines() if line.strip()]
                for start in range(0, len(lines), REPLAY_CHUNK):
                    await self._send(lines[start : start + REPLAY_CHUNK])
            except (RedisError, OSError) as exc:
                self._mark_down(exc)
                with contextlib.suppress(OSError):
                    self.backlog.unclaim(claimed)
                return
            except asyncio.CancelledError:
                with contextlib.suppress(OSError):
                    self.backlog.unclaim(claimed)
                raise
            self._mark_up()
            claimed.unlink(missing_ok=True)
            log.info("usage backlog %s replayed (%d events)", claimed.name, len(lines))

    async def aclose(self) -> None:
        if self.owns_client:
            await self.client.aclose()


class UsageEmitter:
    """The request observer and its background flusher."""

    def __init__(
        self, sink: UsageSink, *, worker_id: str, flush_interval_s: float, batch_size: int = BATCH_SIZE
    ) -> None:
        self.sink = sink
        self.worker_id = worker_id
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.dropped = 0
        self.emitted = 0
        self._buffer: list[bytes] = []
        self._full = asyncio.Event()

    def observe(self, record: RequestRecord) -> None:
        self._buffer.append(encode_event(usage_event(record, self.worker_id)))
        self.emitted += 1
        if len(self._buffer) >= self.batch_size:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def flush(self) -> None:
        """Write what is buffered; on failure put it back in front, within MAX_BUFFERED."""
        while self._buffer:
            batch, self._buffer = self._buffer, []
            try:
                written = await self.sink.write(batch)
            except BaseException:  # cancelled mid-write: keep the batch (a double is harmless)
                self._buffer = batch + self._buffer
                raise
            if not written:
                self._buffer = batch + self._buffer
                overflow = len(self._buffer) - MAX_BUFFERED
                if overflow > 0:
                    del self._buffer[:overflow]
                    self.dropped += overflow
                    log.error("usage buffer full: %d oldest events dropped (%d in all)", overflow, self.dropped)
                return

    async def run(self) -> None:
        while True:
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that meets
            # the event being set (gh-86296), and this task then never stops at shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval_s):
                    await self._full.wait()
            self._full.clear()
            await self.flush()
            await self.sink.maintain()

    async def aclose(self) -> None:
        await self.flush()
        await self.sink.aclose()


USAGE_EMITTER_KEY = web.AppKey("usage_emitter", UsageEmitter)


def build_emitter(settings: WorkerSettings) -> UsageEmitter:
    sink: UsageSink
    if settings.embedded:
        sink = SpoolSink(SpoolFolder(settings.usage_spool_dir, settings.worker_id))
    else:
        client = redis.asyncio.Redis.from_url(
            settings.redis_url,
            client_name=f"gateway-worker:{settings.worker_id}:usage",
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            socket_keepalive=True,
        )
        sink = RedisStreamSink(
            client,
            stream=settings.usage_stream_key,
            maxlen=settings.usage_stream_maxlen,
            backlog=SpoolFolder(settings.usage_backlog_dir, settings.worker_id),
        )
    return UsageEmitter(sink, worker_id=settings.worker_id, flush_interval_s=settings.usage_flush_interval_s)


def register_usage_emitter(app: web.Application) -> None:
    """Route registrar for ``create_app``: observe every request, flush in the background."""
    emitter = build_emitter(app[SETTINGS_KEY])
    app[USAGE_EMITTER_KEY] = emitter
    app[OBSERVERS_KEY].append(emitter)
    app.cleanup_ctx.append(_emitter_lifespan)


async def _emitter_lifespan(app: web.Application) -> AsyncIterator[None]:
    emitter = app[USAGE_EMITTER_KEY]
    # A bug in the flusher is logged and it starts again; the events stay buffered.
    tasks = BackgroundTasks()
    tasks.start("usage-emitter", emitter.run)
    try:
        yield
    finally:
        await tasks.stop()
        # The server has stopped: every request has reported. Write the rest out.
        await emitter.aclose()
