"""The stage of the fleet's "must show" tests: real upstreams that count what reaches them,
a consumer set up through the portal's services, and two real workers that serve it.

Nothing here builds a snapshot by hand: every change goes through a service, and its
``on_commit`` publish runs inside ``django_capture_on_commit_callbacks(execute=True)``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import h11
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


def first_refusal(
    url: str,
    headers: dict[str, str],
    warmed: threading.Barrier,
    revoked: threading.Event,
    since: list[float],
    *,
    deadline_s: float,
) -> tuple[float, int]:
    """Warm a connection to ``url`` (the key still works), meet the revoker at ``warmed``,
    wait for ``revoked``, then poll until ``url`` answers 401: (seconds from ``since[0]``,
    requests sent after it). Raises if it still answers otherwise after ``deadline_s``."""
    with httpx.Client(timeout=2.0, headers=headers) as client:
        try:
            assert client.get(url).status_code == 200, f"{url} refused the key before its revocation"
        finally:
            warmed.wait(timeout=deadline_s)
        assert revoked.wait(timeout=deadline_s), "the key was never revoked"
        sent = 0
        while True:
            status = client.get(url).status_code
            sent += 1
            seconds = time.perf_counter() - since[0]
            if status == 401:
                return seconds, sent
            assert status == 200, f"{url} answered {status} while the key was being revoked"
            if seconds > deadline_s:
                raise AssertionError(f"{url} still accepted the revoked key after {deadline_s} s")
            time.sleep(0.002)  # a poll interval, not a wait for something to happen


@dataclass(frozen=True)
class Answer:
    """One response of a burst: which worker gave it, its status, headers and body."""

    worker_url: str
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def _answer(url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Answer:
    connection = h11.Connection(our_role=h11.CLIENT)
    response: h11.Response | None = None
    body = bytearray()
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
    finally:
        writer.close()
    assert response is not None
    headers = {name.decode().lower(): value.decode() for name, value in response.headers}
    return Answer(url, response.status_code, headers, bytes(body))


async def _burst(urls: Sequence[str], path: str, headers: dict[str, str], open_at_once: int) -> list[Answer]:
    # Connections first, in waves: a worker listens with aiohttp's default backlog of 128,
    # and hundreds of simultaneous connects would wait out SYN retransmissions (1 s, 3 s).
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for start in range(0, len(urls), open_at_once):
        streams += await asyncio.gather(*(_open(url) for url in urls[start : start + open_at_once]))
    # Then every request at once, before any response is read.
    for url, (_reader, writer) in zip(urls, streams, strict=True):
        request = h11.Connection(our_role=h11.CLIENT)
        host = urlsplit(url).netloc
        fields = [("Host", host), ("Connection", "close"), *headers.items()]
        writer.write(request.send(h11.Request(method="GET", target=path, headers=fields)) or b"")
        writer.write(request.send(h11.EndOfMessage()) or b"")
    await asyncio.gather(*(writer.drain() for _reader, writer in streams))
    return list(
        await asyncio.gather(
            *(_answer(url, reader, writer) for url, (reader, writer) in zip(urls, streams, strict=True))
        )
    )


def burst(
    worker_urls: Sequence[str], path: str, headers: dict[str, str], *, count: int, open_at_once: int = 50
) -> list[Answer]:
    """``count`` GETs of ``path``, alternating between the workers, all in flight at once:
    one connection each, opened beforehand, every request written before any answer is
    read. Answers in order."""
    urls = [worker_urls[i % len(worker_urls)] for i in range(count)]
    return asyncio.run(_burst(urls, path, headers, open_at_once))
