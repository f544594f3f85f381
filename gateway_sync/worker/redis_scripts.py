"""Redis plumbing shared by the worker's Redis-backed limiters (limits.py for requests,
token_limits.py for tokens and money): running a Lua script with NOSCRIPT recovery, sending
the scripts of one event-loop turn as one pipeline, and the outage state that makes an
unreachable Redis cost one log line and one probe per interval, not a timeout per request."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

import redis.asyncio
from redis.exceptions import NoScriptError

FailMode = Literal["open", "closed"]

log = logging.getLogger(__name__)


def script_sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


async def eval_script(
    client: redis.asyncio.Redis, script: str, keys: Sequence[str], args: Sequence[int | str | float], *, sha: str = ""
) -> Any:
    """EVALSHA, loading the script again on NOSCRIPT (Redis restarted or flushed)."""
    sha = sha or script_sha(script)
    try:
        return await client.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script)
        return await client.evalsha(sha, len(keys), *keys, *args)


class RedisOutage:
    """When Redis is considered down, shared by the Redis-backed limiters: an outage is
    logged once when it starts (with what ``fail_mode`` does meanwhile) and once when it
    ends, and while it lasts Redis is tried at most every ``probe_interval_s`` so that a
    blackholed Redis does not cost every request a timeout."""

    def __init__(
        self, *, what: str, fail_mode: FailMode, probe_interval_s: float, logger: logging.Logger = log
    ) -> None:
        if fail_mode not in ("open", "closed"):
            raise ValueError(f"fail_mode must be 'open' or 'closed', not {fail_mode!r}")
        self.what = what
        self.fail_mode: FailMode = fail_mode
        self.probe_interval_s = probe_interval_s
        self.log = logger
        self.down_since: float | None = None
        self.next_probe = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def skip_redis(self) -> bool:
        """True: Redis is down and not due for a probe; decide without it."""
        return self.down_since is not None and time.monotonic() < self.next_probe

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self.next_probe = now + self.probe_interval_s
        if self.down_since is None:
            self.down_since = now
            self.log.warning(
                "%s: Redis unreachable (%s: %s); failing %s%s",
                self.what,
                type(exc).__name__,
                exc,
                self.fail_mode,
                " to the per-process limiter (limits are per worker until Redis is back)"
                if self.fail_mode == "open"
                else ": refusing every request until Redis is back",
            )

    def succeeded(self) -> None:
        if self.down_since is not None:
            self.log.warning("%s: Redis is back after %.1f s", self.what, time.monotonic() - self.down_since)
            self.down_since = None


class ScriptCoalescer:
    """The checks of one event-loop turn go to Redis as one pipeline: one write and one
    read for all of them, instead of a round trip (and a pooled connection) each. A check
    waits at most until the end of the turn it was made in."""

    def __init__(self, client: redis.asyncio.Redis, script: str) -> None:
        self.client = client
        self.script = script
        self.sha = script_sha(script)
        self._pending: list[tuple[Sequence[str], Sequence[int | str], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, keys: Sequence[str], args: Sequence[int | str]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((keys, args, future))
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[Sequence[str], Sequence[int | str], asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._execute(batch)
        except BaseException as exc:  # every waiting check sees the failure and decides
            for _keys, _args, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_keys, _args, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the request was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, batch: list[tuple[Sequence[str], Sequence[int | str], asyncio.Future[Any]]]) -> list[Any]:
        replies = await self._pipeline(batch)
        if any(isinstance(reply, NoScriptError) for reply in replies):  # Redis restarted or flushed
            await self.client.script_load(self.script)
            replies = await self._pipeline(batch)
        return replies

    async def _pipeline(self, batch: list[tuple[Sequence[str], Sequence[int | str], asyncio.Future[Any]]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys, args, _future in batch:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))
