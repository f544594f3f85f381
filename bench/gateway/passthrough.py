"""Minimal pass-through proxies, one per HTTP server and client pairing (server_choice.py).

Each does the same and nothing more: read the request, forward it to ``BENCH_UPSTREAM``
with one shared keep-alive client, and stream the response back. It runs in the bench venv
(bench/.cache/bench-venv: aiohttp, uvloop, uvicorn with httptools, granian, httpx2) and
imports nothing from the project, so uvicorn and granian can load it by module name.

    python passthrough.py aiohttp-aiohttp|uvicorn-aiohttp|granian-aiohttp|uvicorn-httpx2 PORT
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import httpx2
import uvicorn
import uvloop
from aiohttp import web
from granian import Granian
from granian.constants import Interfaces, Loops

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9000")
# Hop-by-hop headers are the connection's own, never forwarded.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _client_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=30)
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding")
    )


# aiohttp server + aiohttp client.


async def _aiohttp_handler(request: web.Request) -> web.StreamResponse:
    session: aiohttp.ClientSession = request.app["session"]
    headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
    body = await request.read()
    target = UPSTREAM + request.rel_url.raw_path_qs
    async with session.request(request.method, target, headers=headers, data=body) as up:
        response = web.StreamResponse(status=up.status)
        for name, value in up.headers.items():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                response.headers.add(name, value)
        if up.content_length is not None:
            response.content_length = up.content_length
        await response.prepare(request)
        async for chunk in up.content.iter_chunked(65536):
            await response.write(chunk)
        await response.write_eof()
        return response


async def _aiohttp_session(app: web.Application) -> AsyncIterator[None]:
    app["session"] = _client_session()
    yield
    await app["session"].close()


def serve_aiohttp(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", _aiohttp_handler)
    app.cleanup_ctx.append(_aiohttp_session)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=uvloop.new_event_loop())


# Bare ASGI (uvicorn, granian) + aiohttp client or httpx2 client.


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _request_headers(scope: Scope) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope["headers"]
        if name.decode("latin-1").lower() not in HOP_BY_HOP
    ]


def _target(scope: Scope) -> str:
    query = scope.get("query_string", b"")
    return UPSTREAM + scope["raw_path"].decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def _lifespan(receive: Receive, send: Send, state: dict[str, Any], opener: Callable[[], Any]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            state["client"] = opener()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            client = state.pop("client", None)
            if client is not None:
                await client.aclose() if hasattr(client, "aclose") else await client.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


_AIOHTTP_STATE: dict[str, Any] = {}


async def asgi_aiohttp(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, _AIOHTTP_STATE, _client_session)
        return
    if "client" not in _AIOHTTP_STATE:  # granian without lifespan support for this interface
        _AIOHTTP_STATE["client"] = _client_session()
    session: aiohttp.ClientSession = _AIOHTTP_STATE["client"]
    body = await _read_body(receive)
    async with session.request(scope["method"], _target(scope), headers=_request_headers(scope), data=body) as up:
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in up.headers.items()
            if name.lower() not in HOP_BY_HOP
        ]
        await send({"type": "http.response.start", "status": up.status, "headers": headers})
        async for chunk in up.content.iter_chunked(65536):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _httpx2_client() -> httpx2.AsyncClient:
    limits = httpx2.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=30)
    return httpx2.AsyncClient(limits=limits, timeout=30)


_HTTPX2_STATE: dict[str, Any] = {}


async def asgi_httpx2(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, _HTTPX2_STATE, _httpx2_client)
        return
    client = _HTTPX2_STATE["client"]
    body = await _read_body(receive)
    request = client.build_request(scope["method"], _target(scope), headers=_request_headers(scope), content=body)
    up = await client.send(request, stream=True)
    try:
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in up.headers.items()
            if name.lower() not in HOP_BY_HOP
        ]
        await send({"type": "http.response.start", "status": up.status_code, "headers": headers})
        async for chunk in up.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await up.aclose()


def serve_uvicorn(port: int, app: str) -> None:
    uvicorn.run(
        f"passthrough:{app}",
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
    )


def serve_granian(port: int) -> None:
    Granian(
        "passthrough:asgi_aiohttp",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        log_enabled=False,
    ).serve()


SERVERS: dict[str, Callable[[int], None]] = {
    "aiohttp-aiohttp": serve_aiohttp,
    "uvicorn-aiohttp": lambda port: serve_uvicorn(port, "asgi_aiohttp"),
    "granian-aiohttp": serve_granian,
    "uvicorn-httpx2": lambda port: serve_uvicorn(port, "asgi_httpx2"),
}


if __name__ == "__main__":
    SERVERS[sys.argv[1]](int(sys.argv[2]))
