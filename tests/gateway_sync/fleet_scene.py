"""The stage of the fleet's "must show" tests: real upstreams that count what reaches them,
a consumer set up through the portal's services, and two real workers that serve it.

Nothing here builds a snapshot by hand: every change goes through a service, and its
``on_commit`` publish runs inside ``django_capture_on_commit_callbacks(execute=True)``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiohttp import web
from django.conf import settings
from django.test import override_settings

from accounts.models import Organization, User
from consumers import services as consumer_services
from consumers.models import ApiKey, ConsumerApp, Plan, Subscription
from demo_upstreams import echo
from demo_upstreams.inprocess import serve_aiohttp
from gateway_sync.models import SnapshotRecord
from marketplace import services as marketplace_services
from marketplace.models import Product
from tests.marketplace.factories import PublishedVersionFactory
from tests.worker.processes import WorkerProcess, running_workers, wait_for_version

# What a publish ran by a test's ``django_capture_on_commit_callbacks`` looks like to the test.
CaptureCallbacks = Callable[..., contextlib.AbstractContextManager[object]]


@dataclass
class CountingUpstream:
    """demo-echo behind a counter; with ``fail_with`` set, every request gets that status."""

    name: str
    fail_with: int | None = None
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    base_url: str = ""

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def app(self) -> web.Application:
        app = echo.create_app()

        # Runs on the server's own loop thread; the test thread only reads the Counter.
        @web.middleware
        async def count(request: web.Request, handler: echo.Handler) -> web.StreamResponse:
            self.calls[request.path] += 1
            if self.fail_with is not None:
                return echo.problem(self.fail_with, f"{self.name} is failing on purpose")
            response = await handler(request)
            response.headers["X-Upstream"] = self.name
            return response

        app.middlewares.insert(0, count)
        return app


@contextlib.contextmanager
def serving(*upstreams: CountingUpstream) -> Iterator[None]:
    """Each upstream on its own loopback port (``base_url`` filled in) while the block runs."""
    with contextlib.ExitStack() as stack:
        for upstream in upstreams:
            upstream.base_url = stack.enter_context(serve_aiohttp(upstream.app()))
        yield


@dataclass(frozen=True)
class Consumer:
    """An app subscribed to ``product`` under ``plan``, with one key (its plaintext kept)."""

    product: Product
    plan: Plan
    app: ConsumerApp
    subscription: Subscription
    key: ApiKey
    plaintext: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.plaintext}"}


def rest_product(provider: User, organization: Organization, slug: str, upstream_url: str) -> Product:
    """A public REST product created by the provider's service; a factory publishes its
    1.0.0 (publishing through review would need an OpenAPI document fetched over HTTP)."""
    product = marketplace_services.product_create(
        actor=provider,
        organization=organization,
        kind=Product.Kind.REST_API,
        slug=slug,
        name=slug.replace("-", " ").title(),
        summary=f"The {slug} product.",
        visibility=Product.Visibility.PUBLIC,
    )
    PublishedVersionFactory(product=product, version="1.0.0", created_by=provider, upstream_url=upstream_url)
    return product


def subscribed_consumer(
    owner: User, organization: Organization, product: Product, *, plan_name: str, **limits: int
) -> Consumer:
    """A plan of ``product`` with ``limits``, an app subscribed to it, and a key: all
    through the consumers' services, as the provider and the consumer would."""
    plan = consumer_services.plan_create(actor=owner, product=product, name=plan_name, **limits)
    app = consumer_services.app_create(actor=owner, organization=organization, name=f"{plan_name} app")
    subscription = consumer_services.subscription_request(actor=owner, app=app, product=product, plan=plan)
    assert subscription.status == Subscription.Status.APPROVED
    key, plaintext = consumer_services.api_key_create(actor=owner, app=app, name=f"{plan_name} key")
    return Consumer(product, plan, app, subscription, key, plaintext)


def worker_env(redis_url: str) -> dict[str, str]:
    """What the workers need to accept the portal's keys and decrypt its upstream secrets."""
    return {
        "REDIS_URL": redis_url,
        "KEY_HASH_PEPPER": settings.KEY_HASH_PEPPER,
        "UPSTREAM_SECRET_KEYS": ",".join(settings.UPSTREAM_SECRET_KEYS),
        # The announcement carries each change; the poll is only the safety net.
        "SNAPSHOT_POLL_INTERVAL_S": "2.0",
        "HEARTBEAT_INTERVAL_S": "1.0",
    }


@contextlib.contextmanager
def fleet(
    redis_url: str, tmp_path: Path, capture: CaptureCallbacks, build: Callable[[], object]
) -> Iterator[tuple[list[WorkerProcess], httpx.Client]]:
    """``build()`` run through the services with its publishes, then two workers serving
    the latest snapshot. Yields the workers and a client for /readyz."""
    with override_settings(REDIS_URL=redis_url), httpx.Client(timeout=5.0) as client:
        with capture(execute=True):
            build()
        version = SnapshotRecord.objects.latest("version").version
        with running_workers(2, worker_env(redis_url), tmp_path, client, prefix="fleet") as workers:
            wait_for_version(workers, client, version, timeout=20)
            yield workers, client


def spread(workers: Sequence[WorkerProcess], count: int, path: str) -> list[str]:
    """``count`` URLs of ``path``, alternating between the workers."""
    return [f"{workers[i % len(workers)].url}{path}" for i in range(count)]


async def _send_all(urls: Sequence[str], headers: dict[str, str], concurrency: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits, headers=headers) as client:

        async def one(url: str) -> httpx.Response:
            async with gate:
                response = await client.get(url)
                await response.aread()
                return response

        return list(await asyncio.gather(*(one(url) for url in urls)))


def send_all(urls: Sequence[str], headers: dict[str, str], *, concurrency: int) -> list[httpx.Response]:
    """GET every URL, ``concurrency`` at a time, from one event loop; responses in order."""
    return asyncio.run(_send_all(urls, headers, concurrency))


def first_refusal(url: str, headers: dict[str, str], since: float, *, deadline_s: float) -> tuple[float, int]:
    """Poll ``url`` until it answers 401; (seconds from ``since``, requests sent). Raises
    if it still answers otherwise after ``deadline_s``."""
    sent = 0
    with httpx.Client(timeout=2.0, headers=headers) as client:
        while True:
            status = client.get(url).status_code
            sent += 1
            now = time.perf_counter()
            if status == 401:
                return now - since, sent
            assert status == 200, f"{url} answered {status} while the key was being revoked"
            if now - since > deadline_s:
                raise AssertionError(f"{url} still accepted the revoked key after {deadline_s} s")
            time.sleep(0.002)  # a poll interval, not a wait for something to happen
