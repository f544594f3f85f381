"""Real worker processes, as deployed: two ``python -m gateway_sync.worker`` per test,
against a snapshot folder (embedded mode) and against Redis (database 14).

They measure how fast a publish reaches every worker, and show that a bad snapshot, a
missing payload or a Redis outage never costs a worker its last good snapshot.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from gateway_sync.contract import encode_snapshot, sha256_hex
from gateway_sync.contract import schema as s
from tests.worker.processes import WorkerProcess, running_workers, start_worker, wait_for_version
from tests.worker.snapshots import FolderPublisher, RedisPublisher, build_snapshot, dangling_snapshot
from tests.worker.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

log = logging.getLogger(__name__)
PUBLISHES = 50
KEYS = 500


class Deployment(Protocol):
    env: dict[str, str]

    def publish(self, snapshot: s.Snapshot) -> None: ...

    def publish_corrupt(self, version: int, payload: bytes, *, sha256: str) -> None: ...

    def publish_without_payload(self, version: int) -> None: ...

    def heartbeat(self, worker_id: str) -> dict[str, Any] | None: ...


class FolderDeployment:
    def __init__(self, tmp_path: Path) -> None:
        self.snapshot_dir = tmp_path / "var" / "snapshots"
        self.publisher = FolderPublisher(self.snapshot_dir)
        self.env = {"SNAPSHOT_DIR": str(self.snapshot_dir), "HEARTBEAT_INTERVAL_S": "0.5"}

    def publish(self, snapshot: s.Snapshot) -> None:
        self.publisher.publish(snapshot)

    def publish_corrupt(self, version: int, payload: bytes, *, sha256: str) -> None:
        self.publisher.publish_payload(version, payload, sha256=sha256, generation=version * 10)

    def publish_without_payload(self, version: int) -> None:
        payload = encode_snapshot(build_snapshot(version))
        self.publisher.publish_payload(version, payload, sha256=sha256_hex(payload), generation=version * 10)
        (self.snapshot_dir / f"snapshot-{version:012d}.json").unlink()

    def heartbeat(self, worker_id: str) -> dict[str, Any] | None:
        path = self.snapshot_dir.parent / "workers" / f"{worker_id}.json"
        return json.loads(path.read_bytes()) if path.exists() else None


class RedisDeployment:
    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.publisher = RedisPublisher(self.client)
        # SNAPSHOT_DIR is set only to prove that the worker does not read it with Redis.
        self.env = {"REDIS_URL": redis_url, "SNAPSHOT_DIR": str(tmp_path / "unused"), "HEARTBEAT_INTERVAL_S": "0.5"}

    def publish(self, snapshot: s.Snapshot) -> None:
        self.publisher.publish(snapshot)

    def publish_corrupt(self, version: int, payload: bytes, *, sha256: str) -> None:
        self.publisher.publish_payload(version, payload, sha256=sha256, generation=version * 10)

    def publish_without_payload(self, version: int) -> None:
        self.publisher.publish_payload(version, None, sha256="0" * 64, generation=version * 10)

    def heartbeat(self, worker_id: str) -> dict[str, Any] | None:
        raw = self.client.get(f"gateway:workers:{worker_id}")
        return None if raw is None else json.loads(raw)  # type: ignore[arg-type]


@pytest.fixture(params=["embedded", "redis"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    if request.param == "embedded":
        yield FolderDeployment(tmp_path)
        return
    redis_deployment = RedisDeployment(request.getfixturevalue("redis_url"), tmp_path)
    try:
        yield redis_deployment
    finally:
        redis_deployment.client.close()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def eventually(condition: Callable[[], object], *, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not met in {timeout} s"
        time.sleep(0.02)


def test_every_publish_reaches_both_workers_within_a_second(deployment, http, tmp_path, request):
    with running_workers(2, deployment.env, tmp_path, http) as workers:
        for worker in workers:
            assert worker.readyz(http) == (
                503,
                {"ready": False, "snapshot_version": None, "worker_id": worker.worker_id, "last_error": None},
            )
        deployment.publish(build_snapshot(1, keys=KEYS))
        wait_for_version(workers, http, 1)

        latencies = []
        for version in range(2, 2 + PUBLISHES):
            started = time.perf_counter()
            deployment.publish(build_snapshot(version, keys=KEYS))
            wait_for_version(workers, http, version)
            latencies.append(time.perf_counter() - started)

        last = 1 + PUBLISHES
        bodies = [worker.readyz(http) for worker in workers]
        assert {(status, body["snapshot_version"]) for status, body in bodies} == {(200, last)}
        assert len({body["snapshot_sha256"] for _status, body in bodies}) == 1
        p50 = statistics.median(latencies)
        p99 = sorted(latencies)[math.ceil(0.99 * len(latencies)) - 1]
        log.info(
            "%s: %d publishes to 2 workers: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
            request.node.callspec.id, PUBLISHES, p50 * 1000, p99 * 1000, max(latencies) * 1000,
        )  # fmt: skip
        assert p99 < 1.0, latencies
        for worker in workers:
            eventually(lambda w=worker: (deployment.heartbeat(w.worker_id) or {}).get("snapshot_version") == last)
            beat = deployment.heartbeat(worker.worker_id)
            assert beat is not None
            assert beat["counters"]["applied"] == 1 + PUBLISHES
            assert beat["last_error"] == ""


def _refusal_reported(deployment: Deployment, workers: list[WorkerProcess], prefix: str) -> Callable[[], bool]:
    def reported() -> bool:
        beats = [deployment.heartbeat(w.worker_id) for w in workers]
        return all(beat is not None and beat["last_error"].startswith(prefix) for beat in beats)

    return reported


def _still_serving(workers: list[WorkerProcess], http: httpx.Client, version: int, error_prefix: str) -> None:
    for worker in workers:
        status, body = worker.readyz(http)
        assert (status, body["snapshot_version"]) == (200, version), worker.log()
        assert body["last_error"].startswith(error_prefix)


def test_a_corrupt_or_missing_snapshot_is_refused_and_both_workers_keep_the_old_one(deployment, http, tmp_path):
    with running_workers(2, deployment.env, tmp_path, http) as workers:
        deployment.publish(build_snapshot(1))
        wait_for_version(workers, http, 1)

        payload = encode_snapshot(build_snapshot(2))
        deployment.publish_corrupt(2, payload, sha256=sha256_hex(payload.replace(b'"App"', b'"Tampered"')))
        eventually(_refusal_reported(deployment, workers, "snapshot 2 refused: checksum mismatch"))
        _still_serving(workers, http, 1, "snapshot 2 refused")

        dangling = encode_snapshot(dangling_snapshot(3))
        deployment.publish_corrupt(3, dangling, sha256=sha256_hex(dangling))
        eventually(_refusal_reported(deployment, workers, "snapshot 3 refused: inconsistent: key sk-dangling"))
        _still_serving(workers, http, 1, "snapshot 3 refused")

        deployment.publish_without_payload(4)
        eventually(_refusal_reported(deployment, workers, "snapshot 4 could not be fetched"))
        _still_serving(workers, http, 1, "snapshot 4 could not be fetched")

        for worker in workers:
            beat = deployment.heartbeat(worker.worker_id)
            assert beat is not None
            assert beat["snapshot_version"] == 1
            assert beat["counters"]["refused"] == 2
            assert beat["counters"]["last_refused_version"] == 3

        deployment.publish(build_snapshot(5))
        wait_for_version(workers, http, 5)
        eventually(_refusal_reported(deployment, workers, ""))
        assert all(worker.readyz(http)[1]["last_error"] is None for worker in workers)


def test_a_worker_stops_cleanly_on_sigterm_and_withdraws_its_heartbeat(deployment, http, tmp_path):
    deployment.publish(build_snapshot(1))
    worker = start_worker("stopping", deployment.env, tmp_path, http)
    try:
        wait_for_version([worker], http, 1)
        eventually(lambda: deployment.heartbeat("stopping") is not None)
    finally:
        assert worker.stop() == 0, worker.log()
    assert deployment.heartbeat("stopping") is None
    assert "uvloop event loop" in worker.log()
    assert "worker stopping stopped" in worker.log()


def test_a_worker_keeps_its_last_good_snapshot_while_redis_is_away(redis_url, http, tmp_path):
    target = urlsplit(redis_url)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 6379))
    publisher = RedisDeployment(redis_url, tmp_path)
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{proxy.port}{target.path}",
        "SNAPSHOT_POLL_INTERVAL_S": "0.3",
        "HEARTBEAT_INTERVAL_S": "0.3",
    }
    try:
        publisher.publish(build_snapshot(1))
        # Started while Redis cannot be reached: alive, but not ready.
        worker = start_worker("through-proxy", env, tmp_path, http)
        try:
            eventually(lambda: worker.readyz(http)[1]["last_error"] is not None)
            status, body = worker.readyz(http)
            assert (status, body["snapshot_version"]) == (503, None)
            assert "Redis GET gateway:snapshot:latest failed" in body["last_error"]

            proxy.start()
            wait_for_version([worker], http, 1)

            proxy.stop()
            publisher.publish(build_snapshot(2))
            eventually(lambda: worker.readyz(http)[1]["last_error"] is not None, what="outage reported")
            for _ in range(5):
                status, body = worker.readyz(http)
                assert (status, body["snapshot_version"]) == (200, 1), "the last good snapshot is still served"
                time.sleep(0.1)

            proxy.start()
            wait_for_version([worker], http, 2)
            eventually(lambda: worker.readyz(http)[1]["last_error"] is None, what="recovery reported")
            eventually(lambda: (publisher.heartbeat("through-proxy") or {}).get("snapshot_version") == 2)
        finally:
            worker.stop()
    finally:
        proxy.stop()
        publisher.client.close()
