"""Fixtures for the worker's tests. No database: nothing here may touch Django.

Tests that use Redis share database 14 (the key names are fixed by the contract), so they
hold an exclusive file lock while they run: parallel test processes, and two test runs at
once, take turns instead of reading each other's snapshots.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from demo_upstreams import echo
from demo_upstreams.inprocess import serve_aiohttp
from tests.worker.snapshots import FolderPublisher, RedisPublisher


def redis_test_url(db: int) -> str:
    """Database ``db`` of the test Redis server (TEST_REDIS_URL)."""
    base = urlsplit(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    return urlunsplit((base.scheme, base.netloc, f"/{db}", "", ""))


REDIS_URL = redis_test_url(14)


@contextlib.contextmanager
def locked_redis(db: int, pattern: str) -> Iterator[str]:
    """Database ``db``, emptied of ``pattern`` keys before and after, held under an
    exclusive file lock so parallel test processes (and test runs) take turns on it."""
    url = redis_test_url(db)
    with (Path(tempfile.gettempdir()) / f"gateway-worker-tests-redis-db{db}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = redis.Redis.from_url(url)
        try:
            _flush(client, pattern)
            yield url
            _flush(client, pattern)
        finally:
            client.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


def _flush(client: redis.Redis, pattern: str) -> None:
    keys = list(client.scan_iter(pattern))
    if keys:
        client.delete(*keys)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def snapshot_dir(tmp_path: Path) -> Path:
    return tmp_path / "var" / "snapshots"


@pytest.fixture
def folder(snapshot_dir: Path) -> FolderPublisher:
    return FolderPublisher(snapshot_dir)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Database 14, emptied of ``gateway:*`` keys, for this test alone."""
    with locked_redis(14, "gateway:*") as url:
        yield url


@pytest.fixture
def redis_publisher(redis_url: str) -> Iterator[RedisPublisher]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield RedisPublisher(client)
    finally:
        client.close()


@pytest.fixture(scope="module")
def echo_a() -> Iterator[str]:
    """A real echo upstream on loopback (demo_upstreams/echo.py)."""
    with serve_aiohttp(echo.create_app()) as url:
        yield url


@pytest.fixture(scope="module")
def echo_b() -> Iterator[str]:
    """A second, distinct echo upstream."""
    with serve_aiohttp(echo.create_app()) as url:
        yield url
