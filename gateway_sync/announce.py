"""Announcing a published snapshot to the workers.

- Embedded mode (no REDIS_URL): the payload is written to SNAPSHOT_DIR as
  ``snapshot-<version>.json``, then ``latest.json`` names it. Both are written to a
  temporary file and renamed, so a worker watching the folder never reads half a file.
- Production: the payload is stored in Redis under ``gateway:snapshot:<version>``, the key
  ``gateway:snapshot:latest`` names it, and a message on channel ``gateway:snapshots``
  tells listening workers at once. (Workers also poll the latest key, in case they missed
  the message.)

The pointer is ``{"version": N, "sha256": "...", "source_generation": G}`` in both cases.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

import redis
from django.conf import settings

LATEST_FILE = "latest.json"
REDIS_LATEST_KEY = "gateway:snapshot:latest"
REDIS_PAYLOAD_KEY = "gateway:snapshot:{version}"
REDIS_CHANNEL = "gateway:snapshots"
# Payloads stay in Redis long enough for any worker to catch up, and for rollbacks.
REDIS_PAYLOAD_TTL_S = 7 * 24 * 3600
FILES_KEPT = 20


class Announcer(Protocol):
    def announce(self, *, version: int, sha256: str, source_generation: int, payload: bytes) -> None: ...


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FileAnnouncer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def announce(self, *, version: int, sha256: str, source_generation: int, payload: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"snapshot-{version:012d}.json"
        _write_atomically(self.directory / name, payload)
        pointer = {"version": version, "sha256": sha256, "source_generation": source_generation, "file": name}
        _write_atomically(self.directory / LATEST_FILE, json.dumps(pointer).encode())
        self._prune(keep=name)

    def _prune(self, keep: str) -> None:
        snapshots = sorted(self.directory.glob("snapshot-*.json"))
        for old in snapshots[:-FILES_KEPT]:
            if old.name != keep:
                old.unlink(missing_ok=True)


class RedisAnnouncer:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def announce(self, *, version: int, sha256: str, source_generation: int, payload: bytes) -> None:
        pointer = json.dumps({"version": version, "sha256": sha256, "source_generation": source_generation})
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(REDIS_PAYLOAD_KEY.format(version=version), payload, ex=REDIS_PAYLOAD_TTL_S)
            pipe.set(REDIS_LATEST_KEY, pointer)
            pipe.publish(REDIS_CHANNEL, pointer)
            pipe.execute()


def default_announcer() -> Announcer:
    if settings.REDIS_URL:
        return RedisAnnouncer(settings.REDIS_URL)
    return FileAnnouncer(Path(settings.SNAPSHOT_DIR))
