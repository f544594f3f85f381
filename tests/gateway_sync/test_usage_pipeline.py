"""Must show: the usage event of every request reaches PostgreSQL, even when Redis is
stopped mid-test and started again.

Two real worker processes serve a product set up through the portal's services. Requests
go through them before, during and after a Redis outage; the portal's ingestion
(``consumers.usage.usage_drain``, what the Celery beat task runs) moves the stream into
PostgreSQL. Redis is a server of the test's own, with an append-only file as a production
Redis holding the stream must have (docs/usage.md), so it can be stopped and started
without disturbing other tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from django.test import override_settings

from consumers.models import UsageEvent
from consumers.usage import IngestResult, usage_drain
from tests.gateway_sync.fleet_scene import (
    CaptureCallbacks,
    Consumer,
    CountingUpstream,
    fleet,
    rest_product,
    serving,
    subscribed_consumer,
)
from tests.worker.private_redis import private_redis

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _get_all(urls: Sequence[str], headers: dict[str, str], *, concurrency: int = 20) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=30.0, headers=headers) as client:

            async def one(url: str) -> httpx.Response:
                async with gate:
                    return await client.get(url)

            return list(await asyncio.gather(*(one(url) for url in urls)))

    return asyncio.run(run())


def _ingest(redis_url: str, capture: CaptureCallbacks) -> IngestResult:
    """One run of the periodic ingestion task, its acknowledgements included."""
    with override_settings(REDIS_URL=redis_url), capture(execute=True):
        return usage_drain()


def test_every_usage_event_reaches_postgresql_across_a_redis_restart(
    owner, organization, tmp_path: Path, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    backlog = tmp_path / "usage-backlog"
    # The worker processes inherit these: a quick flush, and a backlog folder to look at.
    monkeypatch.setenv("USAGE_BACKLOG_DIR", str(backlog))
    monkeypatch.setenv("USAGE_FLUSH_INTERVAL_S", "0.05")
    upstream = CountingUpstream("metered")
    consumers: list[Consumer] = []

    def build() -> None:
        product = rest_product(owner, organization, "metered", upstream.base_url)
        consumers.append(subscribed_consumer(owner, organization, product, plan_name="Big", requests_per_minute=50_000))

    sent: Counter[tuple[str, int]] = Counter()
    with (
        private_redis(tmp_path / "redis") as server,
        serving(upstream),
        fleet(server.url, tmp_path, django_capture_on_commit_callbacks, build) as (workers, _client),
    ):
        consumer = consumers[0]

        def phase(name: str, count: int, headers: dict[str, str], expected: int) -> None:
            paths = [f"/api/metered/anything/{name}-{number}" for number in range(count)]
            urls = [f"{workers[n % 2].url}{path}" for n, path in enumerate(paths)]
            responses = _get_all(urls, headers)
            assert [r.status_code for r in responses] == [expected] * count, responses[0].text
            sent.update((path, expected) for path in paths)

        phase("before", 150, consumer.headers, 200)
        phase("anonymous", 10, {"Authorization": "Bearer sk-not-a-key"}, 401)
        time.sleep(0.2)  # two flush intervals: some events are in the stream...
        first = _ingest(server.url, django_capture_on_commit_callbacks)
        assert first.inserted > 0  # ...and some of them already in PostgreSQL

        server.stop()
        # Redis is down: the limiter fails open, the events wait in the workers' backlog.
        phase("during", 150, consumer.headers, 200)
        deadline = time.monotonic() + 10
        while not any(backlog.glob("*.jsonl")):
            assert time.monotonic() < deadline, "no backlog file was written while Redis was down"
            time.sleep(0.05)

        server.start()  # the same port and append-only file
        phase("after", 50, consumer.headers, 200)
        deadline = time.monotonic() + 30
        stored = 0
        while stored < sum(sent.values()):
            assert time.monotonic() < deadline, f"{stored} of {sum(sent.values())} events reached PostgreSQL"
            _ingest(server.url, django_capture_on_commit_callbacks)
            stored = UsageEvent.objects.filter(product_slug="metered").count()
            time.sleep(0.1)
        assert not any(backlog.glob("*.jsonl*")), "the backlog was replayed and removed"

    rows = Counter(UsageEvent.objects.filter(product_slug="metered").values_list("path", "status"))
    assert rows == sent  # every request once: none lost, none doubled
    assert upstream.total == 350
    by_app = Counter(UsageEvent.objects.filter(product_slug="metered").values_list("app_id", flat=True))
    assert by_app == {consumer.app.id: 350, None: 10}
    assert set(UsageEvent.objects.values_list("worker_id", flat=True)) == {w.worker_id for w in workers}
