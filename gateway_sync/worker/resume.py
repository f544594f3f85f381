"""Resumable streams: a streamed completion kept for ``RESUME_WINDOW_S`` so a client that
lost its connection can reconnect with ``Last-Event-ID`` and get the rest of an answer
that was already paid for.

The LLM proxy gives every SSE event it sends an ``id: <response_id>.<seq>`` line
(``response_id``: 32 hex digits, ``seq``: 0, 1, 2, ...) and calls a ``ResumeStore``:

1. ``begin(response_id, app_id=...)`` when the stream starts;
2. ``append(response_id, seq, event)`` with the exact bytes of each event as sent;
3. ``end(response_id)`` once the last event has been sent, or ``abandon(response_id)``
   when the stream will never be finished (its handler was cancelled): the response stops
   being buffered and becomes unavailable at once (its replay answers None, its
   followers stop) rather than leaving a reconnecting client to wait for the idle timeout;
4. ``replay(response_id, app_id=..., after_seq=...)`` for a reconnecting client: None when
   the response is unknown, expired, unavailable or another app's (the caller answers
   404), else an iterator over every event after ``after_seq``, which keeps following a
   stream still being produced until its ``end``, or until nothing arrived for
   ``idle_timeout_s`` (the producer died: the iterator ends without the terminal event).

Buffering never slows the stream and never fails it. ``append`` does no I/O: in Redis
mode it queues a command, and the store's background ``run()`` sends everything queued
during one loop turn as one pipeline (while a pipeline is in flight the next batch
gathers: group commit, no fixed delay), with one Lua call per response (``WRITE_SCRIPT``
in resume_redis.py: its begin, events, end and expiries) rather than a command each. When
Redis fails, the failure is logged once, the streams whose events were lost stop being
buffered (resuming them is then unavailable: their replay answers None) and the streams
themselves go on.

A response whose events pass ``RESUME_MAX_BYTES`` (or ``MAX_EVENTS``) stops being buffered
and becomes unavailable too: a replay never serves an answer with a hole in it. Replays
check this themselves as well: events are contiguous from ``after_seq + 1`` or the replay
stops.

Redis layout (the ``{...}`` hash tag keeps both keys in one cluster slot):

- ``gateway:resume:{<response_id>}``: a stream; event ``seq`` has the entry id
  ``0-<seq + 1>`` and one field ``d`` (its bytes); ``end`` adds the entry ``1-0``, which
  sorts after every event and refuses any later append.
- ``gateway:resume:{<response_id>}:meta``: a hash with ``app`` (the owner's app id).

Both expire ``RESUME_WINDOW_S`` after the last write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio
from aiohttp import web

from gateway_sync.worker.app import SETTINGS_KEY
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.supervisor import BackgroundTasks

log = logging.getLogger(__name__)

KEY_PREFIX = "gateway:resume:"
DATA_FIELD = b"d"
END_FIELD = b"end"
END_ID = "1-0"
# A guard beside the byte cap: a flood of tiny events must not make a huge stream either.
MAX_EVENTS = 100_000
# A follower idle this long decides the producer died (an LLM may think for a while).
DEFAULT_IDLE_TIMEOUT_S = 60.0
# Redis mode: how long one XREAD BLOCK waits before the follower checks on the stream.
FOLLOW_BLOCK_S = 1.0
# Redis mode: entries per XRANGE / XREAD while replaying.
READ_COUNT = 512
# Redis mode: queued bytes beyond which a slow Redis makes new appends unavailable instead.
MAX_QUEUED_BYTES = 32 * 1024 * 1024
REDIS_PROBE_INTERVAL_S = 1.0
# Embedded mode: all buffered responses together.
DEFAULT_MEMORY_MAX_BYTES = 64 * 1024 * 1024
# Sequence numbers fit a Redis stream id's 64-bit sequence part with room to spare.
MAX_SEQ = 2**53
_LAST_EVENT_ID = re.compile(r"([0-9a-f]{32})\.(0|[1-9][0-9]{0,15})")


def parse_last_event_id(value: str) -> tuple[str, int] | None:
    """``(response_id, seq)`` from a ``Last-Event-ID`` header, or None if it is not one of
    ours (``<32 lowercase hex>.<seq>``, no sign, no leading zero, seq below 2**53)."""
    match = _LAST_EVENT_ID.fullmatch(value.strip())
    if match is None:
        return None
    seq = int(match[2])
    return (match[1], seq) if seq < MAX_SEQ else None


def stream_key(response_id: str) -> str:
    return f"{KEY_PREFIX}{{{response_id}}}"


def meta_key(response_id: str) -> str:
    return f"{KEY_PREFIX}{{{response_id}}}:meta"


class ResumeStore(Protocol):
    async def begin(self, response_id: str, *, app_id: int) -> None: ...

    async def append(self, response_id: str, seq: int, event: bytes) -> None: ...

    async def end(self, response_id: str) -> None: ...

    async def abandon(self, response_id: str) -> None:
        """The stream will not be finished: make it unavailable (does no I/O, never waits)."""

    async def replay(self, response_id: str, *, app_id: int, after_seq: int) -> AsyncIterator[bytes] | None:
        """None: answer 404. Otherwise the events after ``after_seq``, in order."""

    async def run(self) -> None:
        """The background work (flushing, expiry); runs until cancelled."""

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------------------
# Embedded mode


@dataclass(eq=False)
class _Buffered:
    app_id: int
    expires_at: float
    events: list[bytes] = field(default_factory=list)
    size: int = 0
    ended: bool = False
    # Set and replaced on every change; followers wait on the current one.
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class MemoryResumeStore:
    """Embedded mode: responses kept in this process, least recently written evicted first
    once all of them together pass ``max_total_bytes``, each dropped ``window_s`` after its
    last write."""

    def __init__(
        self,
        *,
        window_s: float,
        max_bytes: int,
        max_total_bytes: int = DEFAULT_MEMORY_MAX_BYTES,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self.window_s = window_s
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.idle_timeout_s = idle_timeout_s
        self.total_bytes = 0
        self._streams: OrderedDict[str, _Buffered] = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def _drop(self, response_id: str, reason: str) -> None:
        buffered = self._streams.pop(response_id, None)
        if buffered is not None:
            self.total_bytes -= buffered.size
            buffered.notify()  # its followers stop
            if reason != "expired":
                log.warning("resumable stream %s no longer buffered: %s", response_id, reason)

    def expire(self) -> None:
        now = time.monotonic()
        while self._streams:
            response_id, buffered = next(iter(self._streams.items()))
            if buffered.expires_at > now:
                return
            self._drop(response_id, "expired")

    async def begin(self, response_id: str, *, app_id: int) -> None:
        self.expire()
        self._drop(response_id, "begun again")
        self._streams[response_id] = _Buffered(app_id=app_id, expires_at=time.monotonic() + self.window_s)

    async def append(self, response_id: str, seq: int, event: bytes) -> None:
        buffered = self._streams.get(response_id)
        if buffered is None or buffered.ended:
            return  # never begun, evicted, expired or over its cap: nothing to keep
        if seq != len(buffered.events):
            self._drop(response_id, f"event {seq} arrived where {len(buffered.events)} was due")
            return
        if buffered.size + len(event) > self.max_bytes:
            self._drop(response_id, f"over RESUME_MAX_BYTES ({self.max_bytes})")
            return
        buffered.events.append(event)
        buffered.size += len(event)
        self.total_bytes += len(event)
        buffered.expires_at = time.monotonic() + self.window_s
        self._streams.move_to_end(response_id)
        buffered.notify()
        while self.total_bytes > self.max_total_bytes:
            self._drop(next(iter(self._streams)), "evicted (resume buffers full)")

    async def end(self, response_id: str) -> None:
        buffered = self._streams.get(response_id)
        if buffered is not None:
            buffered.ended = True
            buffered.expires_at = time.monotonic() + self.window_s
            self._streams.move_to_end(response_id)
            buffered.notify()

    async def abandon(self, response_id: str) -> None:
        self._drop(response_id, "abandoned (its handler was cancelled)")

    async def replay(self, response_id: str, *, app_id: int, after_seq: int) -> AsyncIterator[bytes] | None:
        self.expire()
        buffered = self._streams.get(response_id)
        if buffered is None or buffered.app_id != app_id:
            return None
        return self._follow(response_id, buffered, max(after_seq + 1, 0))

    async def _follow(self, response_id: str, buffered: _Buffered, position: int) -> AsyncIterator[bytes]:
        last_news = time.monotonic()
        while True:
            while position < len(buffered.events):
                yield buffered.events[position]
                position += 1
                last_news = time.monotonic()
            if buffered.ended or self._streams.get(response_id) is not buffered:
                return
            remaining = last_news + self.idle_timeout_s - time.monotonic()
            if remaining <= 0:
                log.info("resumed stream %s: the producer went quiet", response_id)
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await buffered.changed.wait()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.expire()

    async def aclose(self) -> None:
        for response_id in list(self._streams):
            self._drop(response_id, "expired")


# ---------------------------------------------------------------------------------------
# Wiring

RESUME_STORE_KEY = web.AppKey("resume_store", ResumeStore)


def build_resume_store(settings: WorkerSettings) -> ResumeStore | None:
    """The store for these settings; None when ``RESUME_WINDOW_S`` is 0 (resuming off)."""
    if settings.resume_window_s <= 0:
        return None
    if settings.embedded:
        return MemoryResumeStore(window_s=settings.resume_window_s, max_bytes=settings.resume_max_bytes)
    # Imported here: the Redis store builds on this module's definitions.
    from gateway_sync.worker.resume_redis import RedisResumeStore

    client = redis.asyncio.Redis.from_url(
        settings.redis_url,
        client_name=f"gateway-worker:{settings.worker_id}:resume",
        socket_connect_timeout=1.0,
        # Above FOLLOW_BLOCK_S: a follower's XREAD BLOCK must not time out on its own.
        socket_timeout=FOLLOW_BLOCK_S + 2.0,
        socket_keepalive=True,
    )
    return RedisResumeStore(client, window_s=settings.resume_window_s, max_bytes=settings.resume_max_bytes)


def register_resume_store(app: web.Application) -> None:
    """Route registrar for ``create_app``: ``app[RESUME_STORE_KEY]`` (absent when resuming
    is off), flushed by a background task for the application's lifetime."""
    store = build_resume_store(app[SETTINGS_KEY])
    if store is None:
        return
    app[RESUME_STORE_KEY] = store
    app.cleanup_ctx.append(_store_lifespan)


async def _store_lifespan(app: web.Application) -> AsyncIterator[None]:
    store = app[RESUME_STORE_KEY]
    tasks = BackgroundTasks()
    tasks.start("resume-store", store.run)
    try:
        yield
    finally:
        await tasks.stop()
        await store.aclose()
