"""The REST request path against a real echo upstream: auth, quotas, routing, streaming,
header hygiene and the upstream failures, with the worker app in process. No Django."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils, web

from gateway_sync.contract import schema as s
from gateway_sync.worker.app import HOLDER_KEY, RouteRegistrar, create_app
from gateway_sync.worker.auth import keyed_hash
from gateway_sync.worker.proxy_rest import register_rest_proxy, upstream_box
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.state import CompiledSnapshot

pytestmark = pytest.mark.anyio

PEPPER = "pepper:test"
GOOD = "sk-good-0123456789"
EXPIRED = "sk-expired-0123456789"
SCOPED_ELSEWHERE = "sk-scoped-0123456789"
NO_SUB = "sk-nosub-0123456789"
UPSTREAM_SECRET = "upstream-s3cret"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def settings_for(tmp_path: Path, **overrides: Any) -> WorkerSettings:
    return WorkerSettings(
        snapshot_dir=tmp_path / "snapshots",
        worker_id="proxy-test",
        poll_interval_s=3600,
        heartbeat_interval_s=3600,
        key_hash_pepper=PEPPER,
        **overrides,
    )


def world(settings: WorkerSettings, echo_a: str, echo_b: str) -> s.Snapshot:
    secret = upstream_box(settings).encrypt(UPSTREAM_SECRET.encode()).decode()
    main = s.Upstream(url=f"{echo_a}/anything/base", auth_header="X-Upstream-Key", secret_encrypted=secret)
    canary = s.Upstream(url=f"{echo_b}/anything/canary")
    product = s.Product(
        id=1, slug="echo", kind="rest_api", organization_id=1, public=True, version_id=1, version="1", upstream=main
    )
    bare = s.Upstream(url=echo_a)
    raw = s.Product(
        id=2, slug="raw", kind="rest_api", organization_id=1, public=True, version_id=2, version="1", upstream=bare
    )
    dead = s.Product(
        id=3,
        slug="dead",
        kind="rest_api",
        organization_id=1,
        public=True,
        version_id=3,
        version="1",
        upstream=s.Upstream(url=closed_port_url()),
    )
    now = time.time()
    return s.Snapshot(
        version=1,
        created_at=now,
        source_generation=1,
        products=(product, raw, dead),
        plans=(
            s.Plan(id=1, product_id=1, name="Free", requests_per_minute=1000),
            s.Plan(id=2, product_id=2, name="Tiny", requests_per_minute=3),
            s.Plan(id=3, product_id=3, name="Dead", requests_per_minute=1000),
        ),
        apps=(s.App(id=7, organization_id=1, name="A"), s.App(id=8, organization_id=1, name="B")),
        keys=(
            s.Key(hash=keyed_hash(PEPPER, GOOD), prefix="sk-good", app_id=7),
            s.Key(hash=keyed_hash(PEPPER, EXPIRED), prefix="sk-exp", app_id=7, expires_at=now - 1),
            s.Key(hash=keyed_hash(PEPPER, SCOPED_ELSEWHERE), prefix="sk-sc", app_id=7, product_ids=(2,)),
            s.Key(hash=keyed_hash(PEPPER, NO_SUB), prefix="sk-ns", app_id=8),
        ),
        subscriptions=(
            s.Subscription(id=11, app_id=7, product_id=1, plan_id=1),
            s.Subscription(id=12, app_id=7, product_id=2, plan_id=2),
            s.Subscription(id=13, app_id=7, product_id=3, plan_id=3),
        ),
        routes=(
            s.Route(
                id=1,
                product_id=1,
                match=s.RouteMatch(path_prefix="/"),
                targets=(s.Target(id=1, name="main", upstream=main), s.Target(id=2, name="canary", upstream=canary)),
                canary=s.Canary(target_id=2, mode="header", header_name="X-Canary", header_value="yes"),
            ),
            s.Route(
                id=2,
                product_id=2,
                priority=5,
                match=s.RouteMatch(path_prefix="/delay"),
                targets=(s.Target(id=3, name="slow", upstream=bare),),
                timeouts=s.Timeouts(first_byte_ms=300, total_ms=2_000),
            ),
        ),
    )


Client = test_utils.TestClient[web.Request, web.Application]


@contextlib.asynccontextmanager
async def gateway(
    settings: WorkerSettings, snapshot: s.Snapshot, *, registrars: Sequence[RouteRegistrar] = (register_rest_proxy,)
) -> AsyncIterator[Client]:
    app = create_app(settings, route_registrars=registrars)
    # No cookie jar: what the test sends is what a consumer sends, no more.
    async with test_utils.TestClient(test_utils.TestServer(app), cookie_jar=aiohttp.DummyCookieJar()) as client:
        app[HOLDER_KEY].swap(CompiledSnapshot.build(snapshot, sha256="0" * 64))
        yield client


@pytest.fixture
async def client(tmp_path, echo_a, echo_b):
    settings = settings_for(tmp_path, max_body_bytes=1024)
    async with gateway(settings, world(settings, echo_a, echo_b)) as client:
        yield client


def bearer(key: str = GOOD, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


async def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == status
    return body


async def test_proxies_method_path_query_body_and_cleans_headers(client, echo_a):
    upstream_host = echo_a.removeprefix("http://")
    response = await client.post(
        "/api/echo/items/42?q=1&q=2&x=%20y",
        data=b'{"hello": "world"}',
        headers=bearer(
            **{
                "Content-Type": "application/json",
                "X-Request-Id": "req-123",
                "Connection": "keep-alive, X-Private",
                "X-Private": "hop",
                "Keep-Alive": "timeout=5",
                "X-Custom": "kept",
            }
        ),
    )
    assert response.status == 200, await response.text()
    assert response.headers["X-Request-Id"] == "req-123"
    assert response.headers["RateLimit"].startswith('"minute";r=999;')
    assert "RateLimit-Policy" in response.headers
    seen = await response.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/anything/base/items/42"
    assert seen["args"] == {"q": ["1", "2"], "x": " y"}
    assert seen["json"] == {"hello": "world"}
    headers = {name.lower(): value for name, value in seen["headers"].items()}
    assert headers["host"] == upstream_host
    assert "authorization" not in headers
    assert "x-api-key" not in headers
    assert headers["x-upstream-key"] == UPSTREAM_SECRET
    assert headers["x-request-id"] == "req-123"
    assert headers["x-custom"] == "kept"
    assert "x-private" not in headers
    assert "keep-alive" not in headers


async def test_x_api_key_works_and_a_request_id_is_created(client):
    response = await client.get("/api/echo/", headers={"x-api-key": GOOD})
    assert response.status == 200
    request_id = response.headers["X-Request-Id"]
    assert len(request_id) == 32
    seen = await response.json()
    assert seen["path"] == "/anything/base/"
    assert {name.lower(): value for name, value in seen["headers"].items()}["x-request-id"] == request_id


async def test_streams_the_response_chunk_by_chunk(client):
    response = await client.get("/api/raw/stream/5", headers=bearer())
    assert response.status == 200
    lines = []
    async for line in response.content:
        lines.append(json.loads(line))
    assert [line["id"] for line in lines] == [0, 1, 2, 3, 4]


async def test_streams_a_chunked_request_body(client):
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(4):
            yield f"part{index};".encode()

    response = await client.post("/api/echo/upload", data=chunks(), headers=bearer())
    assert response.status == 200
    assert (await response.json())["data"] == "part0;part1;part2;part3;"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-unknown"}, {"x-api-key": EXPIRED}])
async def test_401_for_missing_unknown_or_expired_keys(client, headers):
    response = await client.get("/api/echo/x", headers=headers)
    body = await problem_of(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    text = json.dumps(body)
    assert "sk-unknown" not in text
    assert EXPIRED not in text


@pytest.mark.parametrize(("key", "code"), [(NO_SUB, "no_subscription"), (SCOPED_ELSEWHERE, "key_out_of_scope")])
async def test_403_without_subscription_or_out_of_scope(client, key, code):
    body = await problem_of(await client.get("/api/echo/x", headers=bearer(key)), 403)
    assert body["code"] == code


async def test_unknown_product_is_a_404_problem(client):
    await problem_of(await client.get("/api/nope/x", headers=bearer()), 404)


async def test_429_after_the_plans_per_minute_quota(client):
    for _ in range(3):
        assert (await client.get("/api/raw/get", headers=bearer())).status == 200
    response = await client.get("/api/raw/get", headers=bearer())
    body = await problem_of(response, 429)
    assert body["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit"].startswith('"minute";r=0;')
    assert response.headers["RateLimit-Policy"] == '"minute";q=3;w=60'


async def test_413_for_a_large_body(client):
    big = b"x" * 4096
    await problem_of(await client.post("/api/echo/upload", data=big, headers=bearer()), 413)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 512

    await problem_of(await client.post("/api/echo/upload", data=chunks(), headers=bearer()), 413)


async def test_502_for_a_closed_upstream_port(client):
    body = await problem_of(await client.get("/api/dead/x", headers=bearer()), 502)
    assert body["code"] == "upstream_unreachable"


async def test_504_beyond_the_route_timeout(client):
    body = await problem_of(await client.get("/api/raw/delay/2", headers=bearer()), 504)
    assert body["code"] == "upstream_timeout"


async def test_canary_header_routes_to_the_second_target(client):
    plain = await (await client.get("/api/echo/v", headers=bearer())).json()
    canary = await (await client.get("/api/echo/v", headers=bearer(**{"X-Canary": "yes"}))).json()
    assert plain["path"] == "/anything/base/v"
    assert canary["path"] == "/anything/canary/v"


async def test_503_before_any_snapshot(tmp_path):
    app = create_app(settings_for(tmp_path), route_registrars=[register_rest_proxy])
    # No cookie jar: what the test sends is what a consumer sends, no more.
    async with test_utils.TestClient(test_utils.TestServer(app), cookie_jar=aiohttp.DummyCookieJar()) as client:
        await problem_of(await client.get("/api/echo/x", headers=bearer()), 503)


def test_proxy_settings_from_the_environment():
    from gateway_sync.worker.settings import DEFAULT_MAX_BODY_BYTES, WorkerSettingsError

    defaults = WorkerSettings.from_env({})
    assert (defaults.rate_limit_fail_mode, defaults.max_body_bytes) == ("open", DEFAULT_MAX_BODY_BYTES)
    chosen = WorkerSettings.from_env({"RATE_LIMIT_FAIL_MODE": "closed", "GATEWAY_MAX_BODY_BYTES": "2048"})
    assert (chosen.rate_limit_fail_mode, chosen.max_body_bytes) == ("closed", 2048)
    for environ in ({"RATE_LIMIT_FAIL_MODE": "maybe"}, {"GATEWAY_MAX_BODY_BYTES": "lots"}):
        with pytest.raises(WorkerSettingsError):
            WorkerSettings.from_env(environ)
