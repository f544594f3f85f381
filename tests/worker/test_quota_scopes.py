"""Quotas of three scopes on one request: the subscription's plan, the key's own, and the
route's safety limits. A request refused by any of them spends quota in none. No Django."""

from __future__ import annotations

import msgspec
import pytest

from gateway_sync.contract import schema as s
from gateway_sync.worker.auth import keyed_hash
from gateway_sync.worker.limits import Limit, MemoryLimiter
from gateway_sync.worker.proxy_rest import PROXY_KEY
from tests.worker.test_rest_proxy import GOOD, PEPPER, bearer, gateway, settings_for, world

pytestmark = pytest.mark.anyio

CAPPED = "sk-capped-0123456789"


def with_key_and_route_limits(snapshot: s.Snapshot) -> s.Snapshot:
    """App 7 gets a second key capped at 2 per minute; product 1's route at 5 per minute."""
    capped = s.Key(hash=keyed_hash(PEPPER, CAPPED), prefix="sk-capped", app_id=7, requests_per_minute=2)
    route = msgspec.structs.replace(snapshot.routes[0], limits=s.SafetyLimits(requests_per_minute=5))
    return msgspec.structs.replace(snapshot, keys=(*snapshot.keys, capped), routes=(route, *snapshot.routes[1:]))


def remaining(response) -> str:
    return response.headers["RateLimit"]


async def test_a_key_quota_refusal_spends_none_of_the_plan_or_route(tmp_path, echo_a, echo_b):
    settings = settings_for(tmp_path)
    async with gateway(settings, with_key_and_route_limits(world(settings, echo_a, echo_b))) as client:
        statuses = [(await client.get("/api/echo/x", headers=bearer(CAPPED))).status for _ in range(4)]
        assert statuses == [200, 200, 429, 429]
        refused = await client.get("/api/echo/x", headers=bearer(CAPPED))
        assert refused.headers["RateLimit"].startswith('"minute";r=0')
        assert "Retry-After" in refused.headers
        # The plan (1000/min) and the route (5/min) counted only the 2 admitted requests.
        allowed = await client.get("/api/echo/x", headers=bearer(GOOD))
        assert allowed.status == 200
        assert remaining(allowed) == '"minute";r=997;t=60'
        for _ in range(2):
            assert (await client.get("/api/echo/x", headers=bearer(GOOD))).status == 200
        # The route's 5 are spent now (2 + 3): the next is refused by the route...
        by_route = await client.get("/api/echo/x", headers=bearer(GOOD))
        assert by_route.status == 429
        assert "q=5;w=60" in by_route.headers["RateLimit-Policy"]
        # ...and that refusal gave the plan's unit back: 5 admitted requests, 5 units spent.
        limiter = client.app[PROXY_KEY].limiter
        assert isinstance(limiter, MemoryLimiter)
        probe = limiter.check_now(scope="sub:11", limits=[Limit(window_s=60, max_requests=1000, name="minute")])
        assert probe.remaining == 1000 - 5 - 1
