"""End to end: a route edited through the services reaches two real worker processes
through real Redis in well under a second, 50 times in a row."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import pytest
from django.test import override_settings

from gateway_sync import services_routes
from gateway_sync.models import SnapshotRecord
from gateway_sync.models_routes import Route
from tests.worker.conftest import redis_url  # noqa: F401 (the fixture: Redis db 14, locked and cleaned)
from tests.worker.processes import running_workers, wait_for_version

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_fifty_route_changes_reach_both_workers_within_a_second(
    route: Route,
    staff,
    redis_url: str,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    django_capture_on_commit_callbacks,
) -> None:
    env = {"REDIS_URL": redis_url, "SNAPSHOT_POLL_INTERVAL_S": "2.0", "HEARTBEAT_INTERVAL_S": "1.0"}
    latencies: list[float] = []
    with override_settings(REDIS_URL=redis_url), httpx.Client(timeout=2.0) as client:
        with django_capture_on_commit_callbacks(execute=True):
            services_routes.route_update(actor=staff, route=route, priority=1)
        with running_workers(2, env, tmp_path, client, prefix="sync") as workers:
            wait_for_version(workers, client, SnapshotRecord.objects.latest("version").version, timeout=20)
            for change in range(50):
                started = time.perf_counter()
                with django_capture_on_commit_callbacks(execute=True):
                    services_routes.route_update(actor=staff, route=route, retry_count=change % 5, priority=change + 2)
                version = SnapshotRecord.objects.latest("version").version
                # From the edit (its commit, compile and publish included) to both workers serving it.
                wait_for_version(workers, client, version, timeout=5)
                latencies.append(time.perf_counter() - started)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert len(latencies) == 50
    print(f"route change to both workers: p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")  # noqa: T201
    assert p99 < 1.0, f"p50 {statistics.median(latencies):.3f} s, p99 {p99:.3f} s"
