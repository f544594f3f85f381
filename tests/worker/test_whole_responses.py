"""Small upstream responses with a known length are read whole and sent in one write; the
edge cases of that path: HEAD, 204, compressed bodies passed through untouched, and an
upstream that breaks off mid-body (a clear 502, since nothing was sent yet). No Django."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import msgspec
import pytest
from aiohttp import web

from demo_upstreams.inprocess import serve_aiohttp
from gateway_sync.contract import schema as s
from tests.worker.test_rest_proxy import bearer, gateway, settings_for, world

pytestmark = pytest.mark.anyio

PAYLOAD = b'{"answer": 42, "padding": "' + b"x" * 2000 + b'"}'


def upstream_app() -> web.Application:
    async def compressed(request: web.Request) -> web.Response:
        body = gzip.compress(PAYLOAD)
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    async def nothing(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def plain(request: web.Request) -> web.Response:
        return web.Response(body=PAYLOAD, content_type="application/json")

    app = web.Application()
    app.router.add_get("/gz", compressed)
    app.router.add_route("*", "/empty", nothing)
    app.router.add_route("*", "/plain", plain)
    return app


@pytest.fixture(scope="module")
def special():
    with serve_aiohttp(upstream_app()) as url:
        yield url


async def _truncating_server() -> tuple[asyncio.Server, str]:
    """Promises 1,000 bytes, sends 10, hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\n0123456789")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def pointing_raw_at(snapshot: s.Snapshot, url: str) -> s.Snapshot:
    """Product "raw" (no route) with its upstream at ``url``."""
    products = tuple(
        msgspec.structs.replace(p, upstream=s.Upstream(url=url)) if p.slug == "raw" else p for p in snapshot.products
    )
    plans = tuple(msgspec.structs.replace(p, requests_per_minute=1000) for p in snapshot.plans)
    return msgspec.structs.replace(snapshot, products=products, plans=plans)


@pytest.fixture
async def client(tmp_path, echo_a, echo_b, special) -> AsyncIterator:
    settings = settings_for(tmp_path)
    async with gateway(settings, pointing_raw_at(world(settings, echo_a, echo_b), special)) as client:
        yield client


async def test_a_compressed_body_passes_through_byte_for_byte(client):
    response = await client.get("/api/raw/gz", headers=bearer(), auto_decompress=False)
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    raw = await response.read()
    assert int(response.headers["Content-Length"]) == len(raw)
    assert gzip.decompress(raw) == PAYLOAD


async def test_head_keeps_the_upstreams_length_and_sends_no_body(client):
    response = await client.head("/api/raw/plain", headers=bearer())
    assert response.status == 200
    assert response.headers["Content-Length"] == str(len(PAYLOAD))
    assert await response.read() == b""


async def test_204_has_no_body(client):
    response = await client.post("/api/raw/empty", headers=bearer(), data=b"{}")
    assert response.status == 204
    assert await response.read() == b""
    assert "X-Request-Id" in response.headers


async def test_a_small_body_arrives_whole_with_its_length(client):
    response = await client.post("/api/raw/plain", headers=bearer(), data=b"x" * 100)
    assert response.status == 200
    assert response.headers["Content-Length"] == str(len(PAYLOAD))
    assert await response.read() == PAYLOAD
    assert response.headers["RateLimit"].startswith('"minute";')


async def test_an_upstream_that_breaks_off_mid_body_is_a_502(tmp_path, echo_a, echo_b):
    server, url = await _truncating_server()
    settings = settings_for(tmp_path)
    try:
        async with gateway(settings, pointing_raw_at(world(settings, echo_a, echo_b), url)) as client:
            response = await client.get("/api/raw/anything", headers=bearer())
            assert response.status == 502
            body = await response.json()
            assert body["code"] == "upstream_broken"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_upstreams_cookies_never_travel_to_another_callers_request(tmp_path, echo_a, echo_b):
    """The shared upstream client keeps no cookie jar: a Set-Cookie answered to one consumer
    must not be sent upstream with the next consumer's request."""

    async def set_cookie(request: web.Request) -> web.Response:
        response = web.json_response({"set": True})
        response.set_cookie("session", "consumer-a-secret")
        return response

    async def show_cookie(request: web.Request) -> web.Response:
        return web.json_response({"cookie": request.headers.get("Cookie")})

    app = web.Application()
    app.router.add_get("/set", set_cookie)
    app.router.add_get("/show", show_cookie)
    settings = settings_for(tmp_path)
    with serve_aiohttp(app) as url:
        # By name: a cookie jar ignores cookies of hosts given as IP addresses.
        by_name = url.replace("127.0.0.1", "localhost")
        async with gateway(settings, pointing_raw_at(world(settings, echo_a, echo_b), by_name)) as client:
            first = await client.get("/api/raw/set", headers=bearer())
            assert "consumer-a-secret" in first.headers["Set-Cookie"]  # passed back to its caller
            second = await client.get("/api/raw/show", headers=bearer())
            assert (await second.json()) == {"cookie": None}
