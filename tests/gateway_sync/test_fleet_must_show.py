"""End to end, what the gateway must show: two real worker processes on real Redis, real
loopback upstreams that count what reaches them, and a configuration made only through the
portal's services (a plan, an app, a subscription, a key, routes, a canary, a fallback).

1. 500 concurrent requests against 100 per minute admit exactly 100, across both workers.
2. A revoked key is refused by every worker within a second of the revocation.
3. A 30 % canary takes 30 % (± 5 points) of 2,000 real calls.
4. A target answering 503 falls back to the next one, and the client sees its 200.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from accounts.models import Organization, User
from consumers import services as consumer_services
from gateway_sync import services_routes
from tests.gateway_sync.fleet_scene import (
    CaptureCallbacks,
    Consumer,
    CountingUpstream,
    burst,
    first_refusal,
    fleet,
    rest_product,
    serving,
    subscribed_consumer,
)
from tests.worker.conftest import redis_url  # noqa: F401 (the fixture: Redis db 14, locked and cleaned)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PROBLEM = "application/problem+json"


def test_a_burst_of_500_against_100_per_minute_admits_exactly_100_across_workers(
    organization: Organization,
    owner: User,
    redis_url: str,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    upstream = CountingUpstream("shop")
    consumers: list[Consumer] = []

    def build() -> None:
        product = rest_product(owner, organization, "shop", upstream.base_url)
        consumers.append(
            subscribed_consumer(owner, organization, product, plan_name="Hundred", requests_per_minute=100)
        )

    with serving(upstream), fleet(redis_url, tmp_path, django_capture_on_commit_callbacks, build) as (workers, _):
        (consumer,) = consumers
        started = time.perf_counter()
        answers = burst([w.url for w in workers], "/api/shop/anything/burst", consumer.headers, count=500)
        seconds = time.perf_counter() - started

    statuses = [a.status for a in answers]
    admitted = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status == 429]
    print(f"burst: {len(admitted)} admitted, {len(refused)} refused, upstream saw {upstream.total}, {seconds:.2f} s")  # noqa: T201
    assert len(admitted) == 100, sorted(set(statuses))
    assert len(refused) == 400, sorted(set(statuses))
    # Both workers answered half the burst against the one shared quota. Which of them admitted
    # the 100 depends on which reached Redis first: on a busy machine one may admit them all
    # while the other refuses its every request, which a per-worker quota never would.
    assert Counter(a.worker_url for a in answers) == {w.url: 250 for w in workers}
    assert upstream.calls == {"/anything/burst": 100}
    for answer in admitted:
        assert answer.headers["ratelimit-policy"] == '"minute";q=100;w=60'
        assert re.fullmatch(r'"minute";r=\d+;t=\d+', answer.headers["ratelimit"])
    for answer in refused:
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert json.loads(answer.body)["code"] == "rate_limited"
        assert 1 <= int(answer.headers["retry-after"]) <= 60
        assert answer.headers["ratelimit-policy"] == '"minute";q=100;w=60'
        assert re.fullmatch(r'"minute";r=0;t=\d+', answer.headers["ratelimit"])
    # The admitted ones counted down the one shared quota: every remaining value once, 99..0.
    remaining = sorted(int(re.search(r"r=(\d+)", a.headers["ratelimit"])[1]) for a in admitted)  # type: ignore[index]
    assert remaining == list(range(100))


def test_a_revoked_key_is_refused_by_every_worker_within_a_second(
    organization: Organization,
    owner: User,
    redis_url: str,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    upstream = CountingUpstream("shop")
    consumers: list[Consumer] = []

    def build() -> None:
        product = rest_product(owner, organization, "shop", upstream.base_url)
        consumers.append(subscribed_consumer(owner, organization, product, plan_name="Free tier"))

    with serving(upstream), fleet(redis_url, tmp_path, django_capture_on_commit_callbacks, build) as (workers, client):
        (consumer,) = consumers
        urls = [f"{w.url}/api/shop/get" for w in workers]
        warmed, revoked, since = threading.Barrier(len(urls) + 1), threading.Event(), [0.0]
        delays: dict[str, tuple[float, int]] = {}
        errors: list[BaseException] = []

        def poll(url: str) -> None:
            try:
                delays[url] = first_refusal(url, consumer.headers, warmed, revoked, since, deadline_s=5.0)
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        # Each poller has its connection open, and the key accepted, before the revocation.
        pollers = [threading.Thread(target=poll, args=(url,)) for url in urls]
        for poller in pollers:
            poller.start()
        warmed.wait(timeout=10)
        with django_capture_on_commit_callbacks(execute=True):
            consumer_services.api_key_revoke(actor=owner, key=consumer.key)
            # From here on both workers are polled; the commit (and its publish) follows.
            since[0] = time.perf_counter()
            revoked.set()
        for poller in pollers:
            poller.join(timeout=10)
        assert not errors, errors
        refusals = [client.get(url, headers=consumer.headers) for url in urls]

    for worker, url in zip(workers, urls, strict=True):
        seconds, sent = delays[url]
        print(f"revocation reached {worker.worker_id} in {seconds * 1000:.0f} ms ({sent} polls)")  # noqa: T201
    assert all(seconds < 1.0 for seconds, _ in delays.values()), delays
    for response in refusals:
        assert response.status_code == 401
        assert response.headers["Content-Type"].startswith(PROBLEM)
        assert response.json()["code"] == "invalid_api_key"


def test_a_30_percent_canary_takes_30_percent_of_2000_calls(
    organization: Organization,
    owner: User,
    staff: User,
    redis_url: str,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    stable, candidate = CountingUpstream("stable"), CountingUpstream("candidate")
    consumers: list[Consumer] = []

    def build() -> None:
        product = rest_product(owner, organization, "shop", stable.base_url)
        # Far above the 2,000 calls: the plan must not be what the test measures.
        consumers.append(subscribed_consumer(owner, organization, product, plan_name="Big", requests_per_minute=20_000))
        route = services_routes.route_create(actor=staff, product=product, name="orders", path_prefix="/anything")
        services_routes.target_add(actor=staff, route=route, name="stable", upstream_url=stable.base_url)
        target = services_routes.target_add(
            actor=staff, route=route, name="candidate", upstream_url=candidate.base_url, weight=0
        )
        services_routes.canary_start(actor=staff, route=route, target=target, mode="weight", weight=30)

    calls = 2000
    with (
        serving(stable, candidate),
        fleet(redis_url, tmp_path, django_capture_on_commit_callbacks, build) as (workers, _),
    ):
        (consumer,) = consumers
        started = time.perf_counter()
        answers = [
            answer
            for _batch in range(calls // 200)
            for answer in burst([w.url for w in workers], "/api/shop/anything/orders", consumer.headers, count=200)
        ]
        seconds = time.perf_counter() - started

    assert [a.status for a in answers] == [200] * calls
    by_header = {name: sum(a.headers["x-gateway-target"] == name for a in answers) for name in ("stable", "candidate")}
    by_upstream = {name: sum(a.headers["x-upstream"] == name for a in answers) for name in ("stable", "candidate")}
    share = candidate.total / calls
    counted = f"stable {stable.total} / candidate {candidate.total} at the upstreams"
    print(f"canary: {by_header} by header, {counted}, {seconds:.2f} s")  # noqa: T201
    assert by_header == by_upstream == {"stable": stable.total, "candidate": candidate.total}
    assert stable.total + candidate.total == calls
    # 30 % ± 5 points: about 4.9 standard deviations for 2,000 draws, so it never flakes.
    assert 0.25 <= share <= 0.35, f"the canary took {share:.1%}"


def test_a_target_answering_503_falls_back_to_the_next_target(
    organization: Organization,
    owner: User,
    staff: User,
    redis_url: str,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    broken, healthy = CountingUpstream("broken", fail_with=503), CountingUpstream("healthy")
    consumers: list[Consumer] = []

    def build() -> None:
        product = rest_product(owner, organization, "shop", healthy.base_url)
        consumers.append(subscribed_consumer(owner, organization, product, plan_name="Free tier"))
        route = services_routes.route_create(actor=staff, product=product, name="orders", path_prefix="/anything")
        services_routes.target_add(actor=staff, route=route, name="broken", upstream_url=broken.base_url)
        backup = services_routes.target_add(
            actor=staff, route=route, name="healthy", upstream_url=healthy.base_url, weight=0
        )
        # One retry of the broken target (503 is retried by default), then the fallback.
        services_routes.route_update(
            actor=staff, route=route, retry_count=1, retry_backoff_ms=10, fallback_target_ids=[backup.pk]
        )

    with (
        serving(broken, healthy),
        fleet(redis_url, tmp_path, django_capture_on_commit_callbacks, build) as (workers, client),
    ):
        (consumer,) = consumers
        responses = [client.get(f"{w.url}/api/shop/anything/orders", headers=consumer.headers) for w in workers]

    for response in responses:
        print(f"fallback: {response.status_code}, attempts {response.headers.get('X-Gateway-Attempts')}")  # noqa: T201
        assert response.status_code == 200
        assert response.headers["X-Gateway-Target"] == "healthy"
        assert response.headers["X-Upstream"] == "healthy"
        assert response.json()["path"] == "/anything/orders"
        # The broken target, its retry, then the fallback.
        assert response.headers["X-Gateway-Attempts"] == "3"
    # Each worker really called the broken upstream twice before falling back.
    assert broken.calls == {"/anything/orders": 4}
    assert healthy.calls == {"/anything/orders": 2}
