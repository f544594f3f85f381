"""Fixtures for the worker's tests. No database: nothing here may touch Django.

Tests that use Redis share database 14 (the key names are fixed by the contract), so they
hold an exclusive file lock while they run: parallel test processes, and two test runs at
once, take turns instead of reading each other's snapshots.
"""

from __future__ import annotations

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

_REDIS_LOCK = Path(tempfile.gettempdir()) / "gateway-worker-tests-redis-db14.lock"


def _worker_redis_url() -> str:
    """The test Redis server (TEST_REDIS_URL), database 14."""
    base = urlsplit(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    return urlunsplit((base.scheme, base.netloc, "/14", "", ""))


REDIS_URL = _worker_redis_url()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def snapshot_dir(tmp_path: Path) -> Path:
    return tmp_path / "var" / "snapshots"


@pytest.fixture
def folder(snapshot_dir: Path) -> FolderPublisher:
    return FolderPublisher(snapshot_dir)


def _flush_gateway_keys(client: redis.Redis) -> None:
    keys = list(client.scan_iter("gateway:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Database 14, emptied of ``gateway:*`` keys, for this test alone."""
    with _REDIS_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            _flush_gateway_keys(client)
            yield REDIS_URL
            _flush_gateway_keys(client)
        finally:
            client.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


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
