"""The world of the MCP gateway's tests: the demo-tools MCP server (official SDK) on
loopback, whose requests are logged; a snapshot with MCP products, plans and keys; the
worker app in process; and the official ``mcp`` client pointed at it. No Django."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
from aiohttp import test_utils, web
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.types import ASGIApp, Receive, Scope, Send

from demo_upstreams.demo_mcp import create_app as create_mcp_app
from demo_upstreams.inprocess import serve_asgi
from gateway_sync.contract import schema as s
from gateway_sync.worker.app import HOLDER_KEY, OBSERVERS_KEY, create_app
from gateway_sync.worker.auth import keyed_hash
from gateway_sync.worker.proxy_mcp import register_mcp_proxy
from gateway_sync.worker.proxy_rest import register_rest_proxy, upstream_box
from gateway_sync.worker.record import RequestRecord
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.state import CompiledSnapshot

PEPPER = "pepper:test"
GOOD = "sk-mcp-good-0123456789"  # app 7: a plan allowing three tools
OTHER = "sk-mcp-other-0123456789"  # app 8: a plan allowing every tool
EXPIRED = "sk-mcp-expired-0123456789"
PROVIDER_SECRET = "provider-s3cret"
ALLOWED = ("add_numbers", "lookup_country", "word_count")
ALL_TOOLS = ("add_numbers", "convert_units", "word_count", "current_time", "lookup_country", "slugify")
SERVER = "demo-tools"


@dataclass
class UpstreamLog:
    """Every HTTP request the upstream MCP server received: method and headers (lowercase)."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def posts(self) -> int:
        return sum(1 for method, _ in self.requests if method == "POST")

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def logged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
                self.requests.append((scope["method"], headers))
            await app(scope, receive, send)

        return logged


@dataclass
class McpUpstream:
    url: str
    log: UpstreamLog


@contextlib.contextmanager
def serve_mcp_upstream(*, json_response: bool = False) -> Iterator[McpUpstream]:
    """demo-tools on loopback; ``json_response``: it answers POSTs with JSON, not SSE."""
    log = UpstreamLog()
    with serve_asgi(lambda port: log.wrap(create_mcp_app(port=port, json_response=json_response))) as base_url:
        yield McpUpstream(url=f"{base_url}/mcp", log=log)


def settings_for(tmp_path: Path, **overrides: Any) -> WorkerSettings:
    defaults: dict[str, Any] = {"worker_id": "mcp-test", "poll_interval_s": 3600, "heartbeat_interval_s": 3600}
    return WorkerSettings(snapshot_dir=tmp_path / "snapshots", key_hash_pepper=PEPPER, **{**defaults, **overrides})


def _product(product_id: int, slug: str, upstream: s.Upstream, kind: s.ProductKind = "mcp_server") -> s.Product:
    return s.Product(
        id=product_id,
        slug=slug,
        kind=kind,
        organization_id=1,
        public=True,
        version_id=product_id * 10,
        version="1.0.0",
        upstream=upstream,
        tools=tuple(s.Tool(name=name) for name in ALL_TOOLS) if kind == "mcp_server" else (),
    )


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def world(settings: WorkerSettings, upstream_url: str) -> s.Snapshot:
    """demo-tools (product 1) with the provider's credential; demo-tiny (3), the same
    server on a plan of 2 requests a minute; dead-tools (4), nothing listening; echo (2),
    a REST product."""
    secret = upstream_box(settings).encrypt(PROVIDER_SECRET.encode()).decode()
    upstream = s.Upstream(url=upstream_url, auth_header="X-Provider-Key", secret_encrypted=secret)
    now = time.time()
    return s.Snapshot(
        version=1,
        created_at=now,
        source_generation=1,
        products=(
            _product(1, SERVER, upstream),
            _product(2, "echo", s.Upstream(url="http://127.0.0.1:9"), kind="rest_api"),
            _product(3, "demo-tiny", upstream),
            _product(4, "dead-tools", s.Upstream(url=f"{closed_port_url()}/mcp", connect_timeout_ms=1000)),
        ),
        plans=(
            s.Plan(id=1, product_id=1, name="Three tools", requests_per_minute=1000, allowed_tools=ALLOWED),
            s.Plan(id=2, product_id=1, name="Every tool", requests_per_minute=1000),
            s.Plan(id=3, product_id=3, name="Tiny", requests_per_minute=2),
            s.Plan(id=4, product_id=2, name="REST", requests_per_minute=1000),
            s.Plan(id=5, product_id=4, name="Dead", requests_per_minute=1000),
        ),
        apps=(s.App(id=7, organization_id=1, name="A"), s.App(id=8, organization_id=1, name="B")),
        keys=(
            s.Key(hash=keyed_hash(PEPPER, GOOD), prefix="sk-mcp-good", app_id=7),
            s.Key(hash=keyed_hash(PEPPER, OTHER), prefix="sk-mcp-other", app_id=8),
            s.Key(hash=keyed_hash(PEPPER, EXPIRED), prefix="sk-mcp-exp", app_id=7, expires_at=now - 1),
        ),
        subscriptions=(
            s.Subscription(id=11, app_id=7, product_id=1, plan_id=1),
            s.Subscription(id=12, app_id=8, product_id=1, plan_id=2),
            s.Subscription(id=13, app_id=7, product_id=3, plan_id=3),
            s.Subscription(id=14, app_id=7, product_id=2, plan_id=4),
            s.Subscription(id=15, app_id=7, product_id=4, plan_id=5),
        ),
    )


class ListObserver:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def observe(self, record: RequestRecord) -> None:
        self.records.append(record)

    def tool_calls(self) -> list[RequestRecord]:
        return [record for record in self.records if record.tool_name is not None]


@dataclass
class Gateway:
    """One worker app serving on loopback."""

    app: web.Application
    url: str  # base URL, no trailing slash
    http: test_utils.TestClient[web.Request, web.Application]
    observer: ListObserver

    def mcp_url(self, server: str = SERVER) -> str:
        return f"{self.url}/mcp/{server}"


@contextlib.asynccontextmanager
async def gateway(settings: WorkerSettings, snapshot: s.Snapshot) -> AsyncIterator[Gateway]:
    observer = ListObserver()

    def observe(app: web.Application) -> None:
        app[OBSERVERS_KEY].append(observer)

    app = create_app(settings, route_registrars=(register_rest_proxy, register_mcp_proxy, observe))
    server = test_utils.TestServer(app, host="127.0.0.1")
    async with test_utils.TestClient(server, cookie_jar=aiohttp.DummyCookieJar()) as http:
        app[HOLDER_KEY].swap(CompiledSnapshot.build(snapshot, sha256="0" * 64))
        yield Gateway(app=app, url=str(server.make_url("")).rstrip("/"), http=http, observer=observer)


class Reroute(httpx2.AsyncHTTPTransport):
    """Sends each request to the port ``target`` names at that moment: a client whose
    requests move from one gateway worker to another mid-session."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(port=self.port)
        return await super().handle_async_request(request)


@contextlib.asynccontextmanager
async def mcp_client(
    url: str,
    key: str | None = GOOD,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    mode: str = "legacy",
    **headers: str,
) -> AsyncIterator[Client]:
    """The official SDK client through the gateway, with ``key`` as Bearer. ``mode``
    "legacy": the initialize handshake (sessions era); "auto": 2026-07-28 when offered."""
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    # The SDK's own defaults: 30 s, and 300 s to read (a stream may idle that long).
    http = httpx2.AsyncClient(headers=headers, transport=transport, timeout=httpx2.Timeout(30, read=300))
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        yield client
