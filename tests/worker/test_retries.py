"""Retries, fallback targets, per-target cooldown and the total deadline on the REST path,
against real in-process upstreams: echo, and a counting one that always fails. No Django."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from demo_upstreams import echo
from demo_upstreams.inprocess import serve_aiohttp
from gateway_sync.contract import schema as s
from gateway_sync.worker.auth import keyed_hash
from gateway_sync.worker.proxy_rest import PROXY_KEY
from gateway_sync.worker.wire import REPLAY_LIMIT
from tests.worker.test_rest_proxy import GOOD, PEPPER, Client, bearer, gateway, settings_for

pytestmark = pytest.mark.anyio


class Failing:
    """An upstream answering ``status`` to everything, remembering each request's body."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.bodies: list[bytes] = []

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            self.bodies.append(await request.read())
            return web.json_response({"who": "failing"}, status=self.status)

        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", handler)
        return app


@contextlib.contextmanager
def failing(status: int = 503) -> Iterator[tuple[Failing, str]]:
    upstream = Failing(status)
    with serve_aiohttp(upstream.app()) as url:
        yield upstream, url


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with serve_aiohttp(echo.create_app()) as url:
        yield url


def snapshot(route: s.Route) -> s.Snapshot:
    upstream = route.targets[0].upstream
    product = s.Product(
        id=1, slug="p", kind="rest_api", organization_id=1, public=True, version_id=1, version="1", upstream=upstream
    )
    return s.Snapshot(
        version=1,
        created_at=time.time(),
        source_generation=1,
        products=(product,),
        plans=(s.Plan(id=1, product_id=1, name="Free", requests_per_minute=10_000),),
        apps=(s.App(id=7, organization_id=1, name="A"),),
        keys=(s.Key(hash=keyed_hash(PEPPER, GOOD), prefix="sk-good", app_id=7),),
        subscriptions=(s.Subscription(id=11, app_id=7, product_id=1, plan_id=1),),
        routes=(route,),
    )


def two_targets(bad_url: str, good_url: str, **route: object) -> s.Route:
    """Target 1 ("bad", always chosen: the other weighs 0) and target 2 ("good", echo)."""
    return s.Route(
        id=1,
        product_id=1,
        match=s.RouteMatch(path_prefix="/"),
        targets=(
            s.Target(id=1, name="bad", upstream=s.Upstream(url=bad_url), weight=100),
            s.Target(id=2, name="good", upstream=s.Upstream(url=f"{good_url}/anything/good"), weight=0),
        ),
        **route,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def proxy_for(tmp_path: Path, route: s.Route) -> AsyncIterator[Client]:
    settings = settings_for(tmp_path, max_body_bytes=4 * 1024 * 1024)
    async with gateway(settings, snapshot(route)) as client:
        yield client


async def test_a_503_target_is_retried_then_falls_back_to_the_second(tmp_path, echo_url):
    with failing(503) as (bad, bad_url):
        route = two_targets(
            bad_url,
            echo_url,
            retry=s.Retry(count=2, backoff_ms=1),
            fallback_target_ids=(2,),
            cooldown=s.Cooldown(failures=100),
        )
        async with proxy_for(tmp_path, route) as client:
            response = await client.get("/api/p/x", headers=bearer())
            assert response.status == 200, await response.text()
            assert (await response.json())["path"] == "/anything/good/x"
            assert response.headers["X-Gateway-Attempts"] == "4"
            assert response.headers["X-Gateway-Target"] == "good"
    assert len(bad.bodies) == 3  # the first attempt and retry.count more


async def test_retry_count_is_honoured_without_fallback(tmp_path, echo_url):
    with failing(503) as (bad, bad_url):
        route = two_targets(bad_url, echo_url, retry=s.Retry(count=3, backoff_ms=1), cooldown=s.Cooldown(failures=100))
        async with proxy_for(tmp_path, route) as client:
            response = await client.get("/api/p/x", headers=bearer())
            assert response.status == 503
            assert (await response.json()) == {"who": "failing"}
            assert response.headers["X-Gateway-Attempts"] == "4"
            assert response.headers["X-Gateway-Target"] == "bad"
    assert len(bad.bodies) == 4


async def test_a_429_falls_back_without_retries_when_not_in_on_statuses(tmp_path, echo_url):
    with failing(429) as (bad, bad_url):
        route = two_targets(
            bad_url,
            echo_url,
            retry=s.Retry(count=3, backoff_ms=1),
            fallback_target_ids=(2,),
            cooldown=s.Cooldown(failures=100),
        )
        async with proxy_for(tmp_path, route) as client:
            response = await client.get("/api/p/x", headers=bearer())
            assert response.status == 200
            assert response.headers["X-Gateway-Attempts"] == "2"
    assert len(bad.bodies) == 1


async def test_a_small_post_body_is_replayed_identically(tmp_path, echo_url):
    payload = b'{"hello": "world", "n": [1, 2, 3]}'
    with failing(503) as (bad, bad_url):
        route = two_targets(
            bad_url,
            echo_url,
            retry=s.Retry(count=1, backoff_ms=1),
            fallback_target_ids=(2,),
            cooldown=s.Cooldown(failures=100),
        )
        async with proxy_for(tmp_path, route) as client:
            response = await client.post(
                "/api/p/items", data=payload, headers=bearer(**{"Content-Type": "application/json"})
            )
            assert response.status == 200
            seen = await response.json()
            assert seen["method"] == "POST"
            assert seen["json"] == {"hello": "world", "n": [1, 2, 3]}
    assert bad.bodies == [payload, payload]


async def test_a_large_body_is_streamed_once_without_retry_or_fallback(tmp_path, echo_url):
    big = b"z" * (REPLAY_LIMIT + 1)
    with failing(503) as (bad, bad_url):
        route = two_targets(
            bad_url,
            echo_url,
            retry=s.Retry(count=3, backoff_ms=1),
            fallback_target_ids=(2,),
            cooldown=s.Cooldown(failures=100),
        )
        async with proxy_for(tmp_path, route) as client:
            response = await client.post("/api/p/upload", data=big, headers=bearer())
            assert response.status == 503
            assert response.headers["X-Gateway-Attempts"] == "1"

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(3):
                    yield b"c" * (REPLAY_LIMIT // 2)

            response = await client.post("/api/p/upload", data=chunks(), headers=bearer())
            assert response.status == 503
            assert response.headers["X-Gateway-Attempts"] == "1"
    assert bad.bodies == [big, b"c" * (3 * (REPLAY_LIMIT // 2))]


async def test_cooldown_skips_a_failing_target_and_brings_it_back(tmp_path, echo_url):
    now = [5000.0]
    with failing(503) as (bad, bad_url):
        route = two_targets(bad_url, echo_url, cooldown=s.Cooldown(failures=2, window_s=30, cooldown_s=10))
        async with proxy_for(tmp_path, route) as client:
            client.server.app[PROXY_KEY].cooldowns.clock = lambda: now[0]

            async def target() -> str:
                response = await client.get("/api/p/x", headers=bearer())
                await response.read()
                return response.headers["X-Gateway-Target"]

            assert [await target(), await target()] == ["bad", "bad"]
            assert await target() == "good"  # cooling down: skipped
            now[0] += 9.9
            assert await target() == "good"
            now[0] += 0.2
            assert await target() == "bad"  # back after cooldown_s
    assert len(bad.bodies) == 3


async def test_the_total_deadline_bounds_retries(tmp_path, echo_url):
    route = s.Route(
        id=1,
        product_id=1,
        match=s.RouteMatch(path_prefix="/"),
        targets=(s.Target(id=1, name="slow", upstream=s.Upstream(url=echo_url)),),
        timeouts=s.Timeouts(first_byte_ms=300, total_ms=800),
        retry=s.Retry(count=10, backoff_ms=50, on_timeout=True),
        cooldown=s.Cooldown(failures=100),
    )
    async with proxy_for(tmp_path, route) as client:
        started = time.monotonic()
        response = await client.get("/api/p/delay/2", headers=bearer())
        elapsed = time.monotonic() - started
        assert response.status == 504
        assert (await response.json())["code"] == "upstream_timeout"
        assert elapsed < 1.5
        assert 2 <= int(response.headers["X-Gateway-Attempts"]) <= 3
