"""The /v1 tests' world: real mock LLM upstreams on loopback (demo_upstreams.mock_llm), the
worker app in process, and a snapshot with model products, routes, plans and keys."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import test_utils, web
from multidict import CIMultiDict

from demo_upstreams import mock_llm
from demo_upstreams.inprocess import serve_aiohttp
from demo_upstreams.mock_llm.plumbing import ClientDisconnected
from gateway_sync.contract import schema as s
from gateway_sync.worker.app import HOLDER_KEY, OBSERVERS_KEY, create_app
from gateway_sync.worker.auth import keyed_hash
from gateway_sync.worker.llm_settings import LlmSettings
from gateway_sync.worker.proxy_llm import llm_registrar
from gateway_sync.worker.proxy_rest import register_rest_proxy
from gateway_sync.worker.record import RequestRecord
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.state import CompiledSnapshot

PEPPER = "pepper:test"
KEY = "sk-llm-0123456789"
AMBIGUOUS = "sk-amb-0123456789"
TIGHT = "sk-tight-0123456789"
NO_SUB = "sk-nosub-0123456789"
CARD = "4111 1111 1111 1111"
Client = test_utils.TestClient[web.Request, web.Application]


@dataclass
class MockServer:
    url: str
    disconnects: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)


@contextlib.contextmanager
def mock_server(forced: Mapping[str, str] | None = None) -> Iterator[MockServer]:
    """A mock LLM; ``forced`` knob headers are added to every request it gets. It notes each
    call and each client that hung up mid-stream."""
    app = mock_llm.create_app(mock_llm.MockLLMConfig(chat_models=("demo-chat", "demo-chat-b")))
    server = MockServer(url="")

    @web.middleware
    async def force(request: web.Request, handler: Any) -> web.StreamResponse:
        server.calls.append(request.path)
        if forced:
            headers = CIMultiDict(request.headers)
            headers.update(forced)
            request = request.clone(headers=headers)
        return await handler(request)

    @web.middleware
    async def watch(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ClientDisconnected:
            server.disconnects.append(request.path)
            raise

    app.middlewares.insert(0, force)
    app.middlewares.append(watch)
    with serve_aiohttp(app) as url:
        server.url = url
        yield server


@dataclass
class Mocks:
    main: MockServer
    failing: MockServer
    cut: MockServer
    cut_early: MockServer


@contextlib.contextmanager
def mocks() -> Iterator[Mocks]:
    with (
        mock_server() as main,
        mock_server({"x-mock-fail": "503"}) as failing,
        mock_server({"x-mock-truncate": "true", "x-mock-text": "A partial answer that stops"}) as cut,
        mock_server({"x-mock-truncate": "true", "x-mock-text": ""}) as cut_early,
    ):
        yield Mocks(main, failing, cut, cut_early)


def offering(public: str, upstream: str = "demo-chat") -> s.ModelOffering:
    return s.ModelOffering(
        public_name=public,
        upstream_name=upstream,
        context_window=8192,
        input_microusd_per_mtok=1_000_000,
        output_microusd_per_mtok=2_000_000,
    )


def world(m: Mocks, *, tight_tokens_per_minute: int = 600, tight_requests_per_minute: int | None = None) -> s.Snapshot:
    def up(server: MockServer) -> s.Upstream:
        return s.Upstream(url=f"{server.url}/v1")

    def route(route_id: int, model: str, targets: tuple[s.Target, ...], **extra: Any) -> s.Route:
        return s.Route(id=route_id, product_id=1, match=s.RouteMatch(model=model), targets=targets, **extra)

    llm = s.Product(
        id=1,
        slug="llm",
        kind="model_api",
        organization_id=1,
        public=True,
        version_id=1,
        version="1",
        upstream=up(m.main),
        models=(
            offering("chat"),
            offering("backup"),
            offering("embed", "demo-embed"),
            offering("flaky"),
            offering("cut"),
            offering("cut-early"),
            offering("canary"),
            offering("guarded"),
            offering("redacted"),
            offering("not-in-plan"),
        ),
    )
    other = s.Product(
        id=2,
        slug="other",
        kind="model_api",
        organization_id=1,
        public=True,
        version_id=2,
        version="1",
        upstream=up(m.main),
        models=(offering("chat"),),
    )
    plan_models = tuple(o.public_name for o in llm.models if o.public_name != "not-in-plan")
    quick = s.Cooldown(failures=2, window_s=60, cooldown_s=60)
    return s.Snapshot(
        version=1,
        created_at=time.time(),
        source_generation=1,
        products=(llm, other),
        plans=(
            s.Plan(id=1, product_id=1, name="Pro", allowed_models=plan_models),
            s.Plan(id=2, product_id=2, name="Other"),
            s.Plan(
                id=3,
                product_id=1,
                name="Tight",
                tokens_per_minute=tight_tokens_per_minute,
                requests_per_minute=tight_requests_per_minute,
            ),
        ),
        apps=(
            s.App(id=7, organization_id=1, name="A"),
            s.App(id=8, organization_id=1, name="Both"),
            s.App(id=9, organization_id=1, name="Tight"),
            s.App(id=10, organization_id=1, name="None"),
        ),
        keys=(
            s.Key(hash=keyed_hash(PEPPER, KEY), prefix="sk-llm", app_id=7),
            s.Key(hash=keyed_hash(PEPPER, AMBIGUOUS), prefix="sk-amb", app_id=8),
            s.Key(hash=keyed_hash(PEPPER, TIGHT), prefix="sk-tight", app_id=9),
            s.Key(hash=keyed_hash(PEPPER, NO_SUB), prefix="sk-nosub", app_id=10),
        ),
        subscriptions=(
            s.Subscription(id=11, app_id=7, product_id=1, plan_id=1),
            s.Subscription(id=12, app_id=8, product_id=1, plan_id=1),
            s.Subscription(id=13, app_id=8, product_id=2, plan_id=2),
            s.Subscription(id=14, app_id=9, product_id=1, plan_id=3),
        ),
        routes=(
            route(
                1,
                "flaky",
                (s.Target(id=1, name="failing", upstream=up(m.failing)),),
                fallback_models=("backup",),
                cooldown=quick,
            ),
            route(2, "cut", (s.Target(id=2, name="cut", upstream=up(m.cut)),), fallback_models=("backup",)),
            route(
                3,
                "cut-early",
                (s.Target(id=3, name="cut-early", upstream=up(m.cut_early)),),
                fallback_models=("backup",),
            ),
            route(
                4,
                "canary",
                (
                    s.Target(id=4, name="stable", upstream=up(m.main), model="demo-chat"),
                    s.Target(id=5, name="candidate", upstream=up(m.main), model="demo-chat-b"),
                ),
                canary=s.Canary(target_id=5, mode="weight", weight=20),
            ),
            route(5, "guarded", (s.Target(id=6, name="main", upstream=up(m.main)),), guardrail_ids=(1,)),
            route(6, "redacted", (s.Target(id=7, name="main-redacted", upstream=up(m.main)),), guardrail_ids=(2,)),
        ),
        guardrails=(
            s.GuardrailPolicy(
                id=1,
                name="No cards",
                rules=(s.GuardrailRule(kind="pii_credit_card", action="block", on_request=False, on_response=True),),
            ),
            s.GuardrailPolicy(
                id=2,
                name="Cards redacted",
                rules=(s.GuardrailRule(kind="pii_credit_card", action="redact", on_request=False, on_response=True),),
            ),
        ),
    )


class ListObserver:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def observe(self, record: RequestRecord) -> None:
        self.records.append(record)


def settings_for(tmp_path: Path, **overrides: Any) -> WorkerSettings:
    return WorkerSettings(
        snapshot_dir=tmp_path / "snapshots",
        worker_id="llm-test",
        poll_interval_s=3600,
        heartbeat_interval_s=3600,
        key_hash_pepper=PEPPER,
        **overrides,
    )


@dataclass
class Gateway:
    client: Client
    app: web.Application
    records: ListObserver
    # SDK clients the test opened, closed when it ends.
    sdks: list[Any] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("/v1"))


class WorkerLikeServer(test_utils.TestServer):
    """Serves like serve.py's AppRunner: a handler whose client left is not cancelled
    (aiohttp's default), where TestServer would cancel it."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False
        return web.AppRunner(self.app, **kwargs)


@contextlib.asynccontextmanager
async def gateway(
    settings: WorkerSettings, snapshot: s.Snapshot, llm_settings: LlmSettings | None = None
) -> AsyncIterator[Gateway]:
    app = create_app(
        settings, route_registrars=(register_rest_proxy, llm_registrar(llm_settings or LlmSettings(keepalive_s=15)))
    )
    observer = ListObserver()
    app[OBSERVERS_KEY].append(observer)
    async with test_utils.TestClient(WorkerLikeServer(app), cookie_jar=aiohttp.DummyCookieJar()) as client:
        app[HOLDER_KEY].swap(CompiledSnapshot.build(snapshot, sha256="0" * 64))
        yield Gateway(client, app, observer)
