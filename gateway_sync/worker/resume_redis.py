"""The Redis-backed ``ResumeStore`` (resume.py has the contract, the layout and the memory
store): appends queued without I/O and written by ``run()`` one Lua call per response per
flush; replays that page through the stream and follow a live one with XREAD BLOCK."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import redis.asyncio
from redis.exceptions import NoScriptError, RedisError, ResponseError

from gateway_sync.worker.resume import (
    DATA_FIELD,
    DEFAULT_IDLE_TIMEOUT_S,
    END_ID,
    FOLLOW_BLOCK_S,
    MAX_EVENTS,
    MAX_QUEUED_BYTES,
    READ_COUNT,
    REDIS_PROBE_INTERVAL_S,
    meta_key,
    stream_key,
)

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Live:
    """What the writer remembers of a response it is buffering."""

    next_seq: int = 0
    size: int = 0
    touched: float = field(default_factory=time.monotonic)


# A queued command: (response_id, seq or -1 for begin / -2 for end, app id or bytes).
_BEGIN = -1
_END = -2


# What one flush writes for one response, in one call of WRITE_SCRIPT.
@dataclass(slots=True)
class _Write:
    app: str = ""  # begun in this flush: the owner's app id
    end: bool = False
    events: list[str | bytes] = field(default_factory=list)  # entry id, bytes, entry id, ...


# KEYS: the stream, the meta hash. ARGV: window ms, MAXLEN, app id ("" if not begun in this
# flush), 1 if ended in this flush, then (entry id, event bytes) pairs. The same commands the
# store would send one by one (HSET, XADD each event, XADD the end, PEXPIRE both), in one
# call. Returns "" or the error of the first write Redis refused (the end's is ignored, as
# an end after the stream's own end changes nothing).
WRITE_SCRIPT = """
local stream, meta = KEYS[1], KEYS[2]
local refused = ''
if ARGV[3] ~= '' then
  local r = redis.pcall('HSET', meta, 'app', ARGV[3])
  if type(r) == 'table' and r.err then refused = r.err end
end
if refused == '' then
  for i = 5, #ARGV, 2 do
    local r = redis.pcall('XADD', stream, 'MAXLEN', '~', ARGV[2], ARGV[i], 'd', ARGV[i + 1])
    if type(r) == 'table' and r.err then
      refused = r.err
      break
    end
  end
end
if refused == '' and ARGV[4] == '1' then
  redis.pcall('XADD', stream, 'MAXLEN', '~', ARGV[2], '1-0', 'end', '')
end
redis.pcall('PEXPIRE', stream, ARGV[1])
redis.pcall('PEXPIRE', meta, ARGV[1])
return refused
"""
WRITE_SHA = hashlib.sha1(WRITE_SCRIPT.encode(), usedforsecurity=False).hexdigest()


class RedisResumeStore:
    """A Redis stream per response, written by ``run()`` one pipeline per loop turn."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        window_s: float,
        max_bytes: int,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self.window_ms = max(1, round(window_s * 1000))
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s
        self.owns_client = owns_client
        self.redis_down = False
        self.flushes = 0
        self._down_until = 0.0
        self._live: dict[str, _Live] = {}
        self._queue: list[tuple[str, int, int | bytes]] = []
        self._queued_bytes = 0
        self._to_delete: set[str] = set()
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._next_sweep = 0.0

    # -- the producer's side: no I/O ------------------------------------------------------

    def _enqueue(self, response_id: str, seq: int, payload: int | bytes) -> None:
        self._queue.append((response_id, seq, payload))
        self._wake.set()

    def _give_up(self, response_id: str, reason: str) -> None:
        """Stop buffering a response and make it unavailable (its replay answers None)."""
        if self._live.pop(response_id, None) is not None:
            log.warning("resumable stream %s no longer buffered: %s", response_id, reason)
        if len(self._to_delete) < 10_000:
            self._to_delete.add(response_id)
            self._wake.set()

    async def begin(self, response_id: str, *, app_id: int) -> None:
        if time.monotonic() < self._down_until:
            return  # Redis just failed: this stream cannot be resumed
        self._live[response_id] = _Live()
        self._enqueue(response_id, _BEGIN, app_id)

    async def append(self, response_id: str, seq: int, event: bytes) -> None:
        live = self._live.get(response_id)
        if live is None:
            return  # never begun, or given up on
        if seq != live.next_seq:
            self._give_up(response_id, f"event {seq} arrived where {live.next_seq} was due")
        elif live.size + len(event) > self.max_bytes:
            self._give_up(response_id, f"over RESUME_MAX_BYTES ({self.max_bytes})")
        elif seq >= MAX_EVENTS:
            self._give_up(response_id, f"over {MAX_EVENTS} events")
        elif self._queued_bytes + len(event) > MAX_QUEUED_BYTES:
            self._give_up(response_id, "Redis is not keeping up")
        else:
            live.next_seq += 1
            live.size += len(event)
            live.touched = time.monotonic()
            self._queued_bytes += len(event)
            self._enqueue(response_id, seq, event)

    async def end(self, response_id: str) -> None:
        if self._live.pop(response_id, None) is not None:
            self._enqueue(response_id, _END, b"")

    async def abandon(self, response_id: str) -> None:
        """Deleted with the next flush; whatever of it is still queued is not written."""
        self._give_up(response_id, "abandoned (its handler was cancelled)")

    # -- the writer ---------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Send what is queued as one pipeline. On a Redis failure the queued responses
        are given up on (logged once per outage); nothing is retried. Returns once what
        was queued before the call is written (or lost), even if another flush was running."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        self._sweep()
        if not self._queue and not self._to_delete:
            return
        batch, self._queue, self._queued_bytes = self._queue, [], 0
        deletes, self._to_delete = self._to_delete, set()
        if time.monotonic() < self._down_until:
            self._lose(batch, deletes, None)
            return
        # One script call per response (its begin, events, end and both expiries), not a
        # command each: the client's cost is per command (packing, reading a reply).
        writes: dict[str, _Write] = {}
        for response_id, seq, payload in batch:
            if response_id in deletes:
                continue  # deleted below anyway
            write = writes.get(response_id)
            if write is None:
                write = writes[response_id] = _Write()
            if seq == _BEGIN:
                write.app = str(payload)
            elif seq == _END:
                write.end = True
            else:
                write.events += [f"0-{seq + 1}", cast(bytes, payload)]
        calls = list(writes.items())
        try:
            results = await self._write(calls, deletes)
            if any(isinstance(result, NoScriptError) for result in results):  # Redis restarted or flushed
                await self.client.script_load(WRITE_SCRIPT)
                again = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
                for i, result in zip(again, await self._write([calls[i] for i in again], set()), strict=True):
                    results[i] = result
        except (RedisError, OSError) as exc:
            self._lose(batch, deletes, exc)
            return
        self.flushes += 1
        if self.redis_down:
            log.warning("resume store: Redis reachable again")
            self.redis_down = False
        for (response_id, _write), result in zip(calls, results, strict=False):
            if isinstance(result, ResponseError):
                self._give_up(response_id, f"Redis refused an event: {result}")
            elif isinstance(result, (RedisError, OSError)):
                self._lose([(response_id, 0, b"")], set(), result)
            elif result:  # the script's error for a refused write
                refusal = result.decode(errors="replace") if isinstance(result, bytes) else str(result)
                self._give_up(response_id, f"Redis refused an event: {refusal}")

    async def _write(self, calls: list[tuple[str, _Write]], deletes: set[str]) -> list[object]:
        pipe = self.client.pipeline(transaction=False)
        for response_id, write in calls:
            pipe.evalsha(
                WRITE_SHA,
                2,
                stream_key(response_id),
                meta_key(response_id),
                self.window_ms,
                MAX_EVENTS + 1,
                write.app,
                1 if write.end else 0,
                *write.events,
            )
        for response_id in deletes:
            pipe.delete(stream_key(response_id), meta_key(response_id))
        return list(await pipe.execute(raise_on_error=False))

    def _lose(self, batch: list[tuple[str, int, int | bytes]], deletes: set[str], exc: BaseException | None) -> None:
        if exc is not None:
            if not self.redis_down:
                log.error("resume store: Redis failed (%r); streams in flight cannot be resumed", exc)
            self.redis_down = True
            self._down_until = time.monotonic() + REDIS_PROBE_INTERVAL_S
        lost = {response_id for response_id, _seq, _payload in batch} | deletes
        for response_id in lost:
            self._live.pop(response_id, None)
        # Deleted once Redis answers again, so no replay meets a stream with a hole.
        self._to_delete |= set(list(lost)[: max(0, 10_000 - len(self._to_delete))])

    def _sweep(self) -> None:
        """Forget responses whose producer went quiet for a whole window without ``end``."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        horizon = now - self.window_ms / 1000
        for response_id in [rid for rid, live in self._live.items() if live.touched < horizon]:
            del self._live[response_id]

    # -- the reader ---------------------------------------------------------------------

    async def replay(self, response_id: str, *, app_id: int, after_seq: int) -> AsyncIterator[bytes] | None:
        after_seq = max(after_seq, -1)
        key = stream_key(response_id)
        start = f"(0-{after_seq + 1}"
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hget(meta_key(response_id), "app")
                pipe.xrange(key, min=start, max="+", count=READ_COUNT)
                owner, raw_entries = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("resume store: replay of %s unavailable: %r", response_id, exc)
            return None
        if owner is None or owner != str(app_id).encode():
            return None
        entries = _entries(raw_entries)
        events = [entry_id for entry_id, _fields in entries if entry_id != END_ID.encode()]
        if [_seq(entry_id) for entry_id in events] != list(range(after_seq + 1, after_seq + 1 + len(events))):
            return None  # the events after after_seq are not all here (given up on, or trimmed)
        return self._follow(response_id, entries, after_seq + 1)

    async def _follow(self, response_id: str, entries: _Entries, expected: int) -> AsyncIterator[bytes]:
        key = stream_key(response_id)
        last_id = f"0-{expected}"
        last_news = time.monotonic()
        try:
            while True:
                for entry_id, fields in entries:
                    if entry_id == END_ID.encode():
                        return
                    if _seq(entry_id) != expected:
                        log.warning("resumed stream %s has a hole before event %d", response_id, expected)
                        return
                    yield fields[DATA_FIELD]
                    expected += 1
                    last_id = entry_id.decode()
                if entries:
                    last_news = time.monotonic()
                if len(entries) == READ_COUNT:
                    entries = _entries(await self.client.xrange(key, min=f"({last_id}", max="+", count=READ_COUNT))
                    continue
                remaining = last_news + self.idle_timeout_s - time.monotonic()
                if remaining <= 0:
                    log.info("resumed stream %s: the producer went quiet", response_id)
                    return
                block_ms = max(1, round(min(FOLLOW_BLOCK_S, remaining) * 1000))
                answer = await self.client.xread({key: last_id}, count=READ_COUNT, block=block_ms)
                entries = _read_entries(answer)
                if not entries and not await self.client.exists(key):
                    return  # expired, or given up on
        except (RedisError, OSError) as exc:
            log.warning("resumed stream %s cut short: %r", response_id, exc)

    async def aclose(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.flush()
        if self.owns_client:
            await self.client.aclose()


_Entries = list[tuple[bytes, dict[bytes, bytes]]]


def _entries(raw: object) -> _Entries:
    """XRANGE's answer (the client decodes nothing: bytes throughout)."""
    return cast(_Entries, raw or [])


def _read_entries(raw: object) -> _Entries:
    """The entries of XREAD's answer for one stream (a list in RESP2, a dict in RESP3)."""
    if not raw:
        return []
    if isinstance(raw, dict):
        return _entries(next(iter(raw.values()))[0])
    return _entries(cast(list[list[object]], raw)[0][1])


def _seq(entry_id: bytes) -> int:
    return int(entry_id.partition(b"-")[2]) - 1
