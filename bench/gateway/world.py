"""The benches' snapshots, built with the pure contract and published to Redis as the portal does.

REST (``bench_snapshot``): one REST product whose upstream is the mock, one app, one key,
and an approved subscription on a plan whose per-minute limit is checked on every request
but never reached. No route: the product's own upstream, the shortest REST path.

LLM (``llm_snapshot``): one model product (``kind="model_api"``) offering ``bench-model``
with prices, whose upstream is the mock's ``/v1``; a plan whose request and token limits and
monthly budget are checked on every request but never reached; a guardrail policy of two PII
redaction rules (email, phone) on requests and responses, attached to the product. No route.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis
from gateway_sync.contract import schema as s
from gateway_sync.worker.auth import keyed_hash
from tests.worker.snapshots import RedisPublisher

PRODUCT_SLUG = "bench"
LLM_PRODUCT_SLUG = "bench-llm"
MODEL = "bench-model"
API_KEY = "sk-bench-0000000000000000000000000000"
PEPPER = "bench-pepper"
# Far above what a 2-core machine can send in a minute, so the limiter never refuses.
REQUESTS_PER_MINUTE = 1_000_000_000
# Likewise for tokens (each request reserves its prompt + max_tokens) and micro-dollars.
TOKENS_PER_MINUTE = 10**12
TOKENS_PER_DAY = 10**13
MONTHLY_BUDGET_MICROUSD = 10**15
GUARDRAIL_POLICY_ID = 1


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


def llm_snapshot(upstream_port: int, *, version: int) -> s.Snapshot:
    offering = s.ModelOffering(
        public_name=MODEL,
        upstream_name=MODEL,
        context_window=128_000,
        input_microusd_per_mtok=150_000,
        output_microusd_per_mtok=600_000,
    )
    policy = s.GuardrailPolicy(
        id=GUARDRAIL_POLICY_ID,
        name="Bench PII",
        rules=(
            s.GuardrailRule(kind="pii_email", action="redact", on_request=True, on_response=True),
            s.GuardrailRule(kind="pii_phone", action="redact", on_request=True, on_response=True),
        ),
    )
    return s.Snapshot(
        version=version,
        created_at=time.time(),
        source_generation=version,
        products=(
            s.Product(
                id=1,
                slug=LLM_PRODUCT_SLUG,
                kind="model_api",
                organization_id=1,
                public=True,
                version_id=1,
                version="1.0.0",
                upstream=s.Upstream(url=f"http://127.0.0.1:{upstream_port}/v1"),
                models=(offering,),
                guardrail_ids=(GUARDRAIL_POLICY_ID,),
            ),
        ),
        plans=(
            s.Plan(
                id=1,
                product_id=1,
                name="Bench",
                requests_per_minute=REQUESTS_PER_MINUTE,
                tokens_per_minute=TOKENS_PER_MINUTE,
                tokens_per_day=TOKENS_PER_DAY,
                monthly_budget_microusd=MONTHLY_BUDGET_MICROUSD,
            ),
        ),
        apps=(s.App(id=1, organization_id=2, name="Bench app"),),
        keys=(s.Key(hash=keyed_hash(PEPPER, API_KEY), prefix=API_KEY[:11], app_id=1),),
        subscriptions=(s.Subscription(id=1, app_id=1, product_id=1, plan_id=1),),
        guardrails=(policy,),
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


class SnapshotBuilder(Protocol):
    def __call__(self, upstream_port: int, *, version: int) -> s.Snapshot: ...


def publish_bench_snapshot(redis_url: str, upstream_port: int, builder: SnapshotBuilder = bench_snapshot) -> None:
    """Flush the bench database's ``gateway:*`` keys and publish ``builder``'s snapshot."""
    client = redis.Redis.from_url(redis_url)
    try:
        flush_gateway_keys(client)
        RedisPublisher(client).publish(builder(upstream_port, version=int(time.time())))
    finally:
        client.close()
