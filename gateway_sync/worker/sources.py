"""Where a worker finds snapshots: the two halves of ``gateway_sync/announce.py``, read side.

- ``FileSnapshotSource`` (embedded mode): ``latest.json`` in SNAPSHOT_DIR names the payload
  file. Both are written by rename, so a read never sees half a file.
- ``RedisSnapshotSource`` (production): the key ``gateway:snapshot:latest`` holds the
  pointer, ``gateway:snapshot:<version>`` the payload, and channel ``gateway:snapshots``
  announces each publish.

A source only reads bytes. It never decides whether a snapshot is good: the loader verifies
every payload against the pointer's sha256 with ``codec.decode_snapshot``. Every failure to
read becomes a ``SourceError``, which the loader reports and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

# The names gateway_sync/announce.py writes (it imports Django, so they are repeated here;
# tests/worker publishes exactly as it does).
LATEST_FILE = "latest.json"
REDIS_LATEST_KEY = "gateway:snapshot:latest"
REDIS_PAYLOAD_KEY = "gateway:snapshot:{version}"
REDIS_CHANNEL = "gateway:snapshots"
_PAYLOAD_FILE = re.compile(r"snapshot-[0-9A-Za-z._-]+\.json")

log = logging.getLogger(__name__)


class SourceError(Exception):
    """The pointer or the payload could not be read. Nothing was refused: try again later."""


class Pointer(msgspec.Struct, frozen=True, kw_only=True):
    """What ``latest`` names: ``{"version", "sha256", "source_generation"[, "file"]}``.
    Fields added later by the portal are ignored."""

    version: int
    sha256: str
    source_generation: int
    file: str = ""


@dataclass(frozen=True, slots=True)
class Sighting:
    """The latest pointer, and when it was announced if the source knows (the file's mtime)."""

    pointer: Pointer
    announced_at: float | None = None


class SnapshotSource(Protocol):
    description: str

    async def latest(self) -> Sighting | None:
        """The latest pointer, None if nothing was published yet; SourceError if unreadable."""
        ...

    async def fetch(self, pointer: Pointer) -> bytes:
        """The payload ``pointer`` names, unverified; SourceError if it cannot be read."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AnnouncingSource(SnapshotSource, Protocol):
    def announcements(self) -> AsyncGenerator[float, None]:
        """Yields the time of each announcement, forever, and once more after every
        (re)connection, since anything announced while disconnected was missed."""
        ...


_pointer_decoder = msgspec.json.Decoder(Pointer)


def parse_pointer(raw: bytes, *, where: str) -> Pointer:
    try:
        return _pointer_decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise SourceError(f"{where} is not a snapshot pointer: {exc}") from None


class FileSnapshotSource:
    """Snapshots in a local folder. Polling is cheap: ``latest.json`` is read only when its
    inode, mtime or size changed (each publish renames a new file over it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = f"folder {directory}"
        self._seen: tuple[tuple[int, int, int], Sighting] | None = None

    async def latest(self) -> Sighting | None:
        # A stat and, rarely, a read of a file of a hundred bytes: not worth a thread.
        path = self.directory / LATEST_FILE
        try:
            stat = path.stat()
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._seen is not None and self._seen[0] == signature:
                return self._seen[1]
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"{path} cannot be read: {exc}") from None
        sighting = Sighting(parse_pointer(raw, where=str(path)), announced_at=stat.st_mtime)
        self._seen = (signature, sighting)
        return sighting

    async def fetch(self, pointer: Pointer) -> bytes:
        name = pointer.file or f"snapshot-{pointer.version:012d}.json"
        if not _PAYLOAD_FILE.fullmatch(name):
            raise SourceError(f"the pointer names {name!r}, which is not a snapshot file of {self.directory}")
        path = self.directory / name
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise SourceError(f"{path} cannot be read: {exc}") from None

    async def aclose(self) -> None:
        return None


def redis_client(url: str, *, client_name: str, retries: int = 2) -> redis.asyncio.Redis:
    """A client that fails fast (the loader and the heartbeat retry on their own schedule)
    and names itself in ``CLIENT LIST``. The announcement listener wants ``retries=0``: a
    reconnection it does not see would hide the messages it missed meanwhile."""
    return redis.asyncio.Redis.from_url(
        url,
        client_name=client_name,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        socket_keepalive=True,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
    )


class RedisSnapshotSource:
    """Snapshots in Redis. The clients are the caller's, and so is closing them:
    ``client`` reads keys (and may be shared with the heartbeat), ``listen_client`` (by
    default ``client``) subscribes, and should not retry on its own (see ``redis_client``)."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        listen_client: redis.asyncio.Redis | None = None,
        backoff_s: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self.client = client
        self.listen_client = client if listen_client is None else listen_client
        self.description = "Redis"
        self._backoff_s = backoff_s

    async def latest(self) -> Sighting | None:
        raw = await self._get(REDIS_LATEST_KEY)
        if raw is None:
            return None
        return Sighting(parse_pointer(raw, where=REDIS_LATEST_KEY))

    async def fetch(self, pointer: Pointer) -> bytes:
        key = REDIS_PAYLOAD_KEY.format(version=pointer.version)
        raw = await self._get(key)
        if raw is None:
            raise SourceError(f"{key} is missing (expired or deleted)")
        return raw

    async def _get(self, key: str) -> bytes | None:
        try:
            raw = await self.client.get(key)
        except (RedisError, OSError) as exc:
            raise SourceError(f"Redis GET {key} failed: {exc}") from None
        if raw is not None and not isinstance(raw, bytes):
            raise SourceError(f"Redis GET {key} returned {type(raw).__name__}, not bytes (decode_responses is on)")
        return raw

    async def announcements(self) -> AsyncGenerator[float, None]:
        delay, longest = self._backoff_s
        while True:
            pubsub = self.listen_client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(REDIS_CHANNEL)
                delay = self._backoff_s[0]
                yield time.time()
                while True:
                    # A bounded wait, so the connection's health check (a PING) gets to run.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        yield time.time()
            except (RedisError, OSError) as exc:
                log.warning("snapshot announcements: %s; subscribing again in %.1f s", exc, delay)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)

    async def aclose(self) -> None:
        return None
