"""The bench's snapshot, built with the pure contract and published to Redis as the portal does.

One REST product whose upstream is the mock, one app, one key, and an approved
subscription on a plan whose per-minute limit is checked on every request but never
reached. No route: the product's own upstream, the shortest REST path.
"""

from __future__ import annotations

import time

import redis
from gateway_sync.contract import schema as s
from gateway_sync.worker.auth import keyed_hash
from tests.worker.snapshots import RedisPublisher

PRODUCT_SLUG = "bench"
API_KEY = "sk-bench-0000000000000000000000000000"
PEPPER = "bench-pepper"
# Far above what a 2-core machine can send in a minute, so the limiter never refuses.
REQUESTS_PER_MINUTE = 1_000_000_000


def bench_snapshot(upstream_port: int, *, version: int) -> s.Snapshot:
    upstream = s.Upstream(url=f"http://127.0.0.1:{upstream_port}")
    return s.Snapshot(
        version=version,
        created_at=time.time(),
        source_generation=version,
        products=(
            s.Product(
                id=1,
                slug=PRODUCT_SLUG,
                kind="rest_api",
                organization_id=1,
                public=True,
                version_id=1,
                version="1.0.0",
                upstream=upstream,
            ),
        ),
        plans=(s.Plan(id=1, product_id=1, name="Bench", requests_per_minute=REQUESTS_PER_MINUTE),),
        apps=(s.App(id=1, organization_id=2, name="Bench app"),),
        keys=(s.Key(hash=keyed_hash(PEPPER, API_KEY), prefix=API_KEY[:11], app_id=1),),
        subscriptions=(s.Subscription(id=1, app_id=1, product_id=1, plan_id=1),),
    )


def flush_gateway_keys(client: redis.Redis) -> int:
    """Delete the ``gateway:*`` keys of the bench's Redis database (and nothing else)."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match="gateway:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.delete(*batch))
            batch.clear()
    if batch:
        deleted += int(client.delete(*batch))
    return deleted


def publish_bench_snapshot(redis_url: str, upstream_port: int) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        flush_gateway_keys(client)
        RedisPublisher(client).publish(bench_snapshot(upstream_port, version=int(time.time())))
    finally:
        client.close()
