"""The worker's Prometheus metrics: the exposition text is strictly well formed, counters and
histograms add up for the requests observers are told about, label values are escaped, the
number of label sets is capped, and /metrics serves the snapshot's state. No Django."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils, web

from demo_upstreams import echo
from demo_upstreams.inprocess import serve_aiohttp
from gateway_sync.contract import schema as s
from gateway_sync.worker.__main__ import REGISTRARS
from gateway_sync.worker.app import HOLDER_KEY, OBSERVERS_KEY, create_app, notify_observers
from gateway_sync.worker.auth import keyed_hash
from gateway_sync.worker.metrics import CONTENT_TYPE, METRICS_KEY, Metrics, register_metrics
from gateway_sync.worker.proxy_rest import register_rest_proxy
from gateway_sync.worker.record import RequestRecord
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.state import CompiledSnapshot
from tests.worker.snapshots import build_snapshot, dangling_snapshot

pytestmark = pytest.mark.anyio

# The 0.0.4 text format, line by line, strictly.
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABEL = rf"[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE}"
NUMBER = r"[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|Inf|NaN)"
SAMPLE = re.compile(rf"^(?P<name>{NAME})(?:\{{(?P<labels>{LABEL}(?:,{LABEL})*)?\}})? (?P<value>{NUMBER})$")
HELP = re.compile(rf"^# HELP (?P<name>{NAME}) (?:[^\\\n]|\\[\\n])*$")
TYPE = re.compile(rf"^# TYPE (?P<name>{NAME}) (?P<type>counter|gauge|histogram|summary|untyped)$")
ONE_LABEL = re.compile(rf"([a-zA-Z_][a-zA-Z0-9_]*)=({LABEL_VALUE})")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def unescape(quoted: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), quoted[1:-1])


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Families' types and every sample; fails on any line the format does not allow, a
    sample before its family's TYPE, a repeated series, or a histogram that does not add up."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: Samples = {}
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            assert HELP.match(line), line
            continue
        if line.startswith("# TYPE "):
            typed = TYPE.match(line)
            assert typed, line
            assert typed["name"] not in types, f"{typed['name']} typed twice"
            types[typed["name"]] = typed["type"]
            continue
        sample = SAMPLE.match(line)
        assert sample, f"not a sample line: {line!r}"
        name = sample["name"]
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no TYPE before it"
        labels = frozenset((key, unescape(value)) for key, value in ONE_LABEL.findall(sample["labels"] or ""))
        key = (name, labels)
        assert key not in samples, f"{line} repeats a series"
        samples[key] = float(sample["value"])
    for name, kind in types.items():
        if kind == "histogram":
            check_histogram(name, samples)
    return types, samples


def check_histogram(name: str, samples: Samples) -> None:
    series: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
    for (sample, labels), value in samples.items():
        if sample == f"{name}_bucket":
            le = dict(labels)["le"]
            series.setdefault(labels - {("le", le)}, []).append((float(le), value))
    for labels, buckets in series.items():
        buckets.sort()
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), f"{name} buckets are not cumulative"
        assert buckets[-1][0] == float("inf")
        assert samples[(f"{name}_count", labels)] == counts[-1]
        assert (f"{name}_sum", labels) in samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series_of(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample, labels in samples if sample == name]


def rendered(metrics: Metrics) -> Samples:
    return parse(metrics.render().decode())[1]


def record(**fields: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "protocol": "rest",
        "method": "GET",
        "path": "/api/echo/x",
        "product_id": 1,
        "product_slug": "echo",
        "route_id": 2,
        "status": 200,
    }
    return RequestRecord(**(base | fields))


REST_ECHO = {"protocol": "rest", "product": "echo", "route": "2"}


def test_counters_and_histograms_add_up_for_the_requests_observed():
    metrics = Metrics()
    metrics.observe(record(duration_s=0.003, upstream_latency_s=0.002, bytes_in=10, bytes_out=100))
    metrics.observe(record(duration_s=0.2, upstream_latency_s=0.15, bytes_in=5, limit_decision="allowed"))
    metrics.observe(record(status=404, duration_s=99.0, bytes_out=7, limit_decision="limited"))

    types, samples = parse(metrics.render().decode())

    assert types["gateway_requests_total"] == "counter"
    assert types["gateway_request_duration_seconds"] == "histogram"
    assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="2xx") == 2
    assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="4xx") == 1
    duration = "gateway_request_duration_seconds"
    assert value(samples, f"{duration}_bucket", **REST_ECHO, le="0.0025") == 0
    assert value(samples, f"{duration}_bucket", **REST_ECHO, le="0.005") == 1
    assert value(samples, f"{duration}_bucket", **REST_ECHO, le="0.25") == 2
    assert value(samples, f"{duration}_bucket", **REST_ECHO, le="60.0") == 2
    assert value(samples, f"{duration}_bucket", **REST_ECHO, le="+Inf") == 3
    assert value(samples, f"{duration}_count", **REST_ECHO) == 3
    assert value(samples, f"{duration}_sum", **REST_ECHO) == pytest.approx(99.203)
    # Only the requests whose upstream answered have an upstream latency.
    assert value(samples, "gateway_upstream_duration_seconds_count", **REST_ECHO) == 2
    assert value(samples, "gateway_upstream_duration_seconds_bucket", **REST_ECHO, le="0.0025") == 1
    assert value(samples, "gateway_upstream_duration_seconds_sum", **REST_ECHO) == pytest.approx(0.152)
    assert value(samples, "gateway_limiter_decisions_total", decision="unlimited") == 1
    assert value(samples, "gateway_limiter_decisions_total", decision="allowed") == 1
    assert value(samples, "gateway_limiter_decisions_total", decision="limited") == 1
    assert value(samples, "gateway_limiter_decisions_total", decision="degraded_open") == 0
    assert value(samples, "gateway_request_bytes_total", direction="in") == 15
    assert value(samples, "gateway_request_bytes_total", direction="out") == 107
    assert series_of(samples, "gateway_upstream_errors_total") == []


def test_a_value_on_a_bucket_bound_falls_in_that_bucket():
    metrics = Metrics()
    metrics.observe(record(duration_s=0.1))
    samples = rendered(metrics)
    assert value(samples, "gateway_request_duration_seconds_bucket", **REST_ECHO, le="0.05") == 0
    assert value(samples, "gateway_request_duration_seconds_bucket", **REST_ECHO, le="0.1") == 1


def test_upstream_errors_by_kind_and_upstream_5xx_answers():
    metrics = Metrics()
    metrics.observe(record(status=504, upstream_error="timeout"))
    metrics.observe(record(status=502, upstream_error="unreachable"))
    metrics.observe(record(status=200, upstream_error="broken_stream", upstream_latency_s=0.01))
    metrics.observe(record(status=503, upstream_latency_s=0.01))  # the upstream's own 503
    metrics.observe(record(status=500, upstream_latency_s=0.01))
    metrics.observe(record(status=503))  # no upstream answered and no kind: the gateway's own
    metrics.observe(record(status=504, upstream_error="made-up"))

    samples = rendered(metrics)

    errors = "gateway_upstream_errors_total"
    assert value(samples, errors, **REST_ECHO, kind="timeout") == 1
    assert value(samples, errors, **REST_ECHO, kind="unreachable") == 1
    assert value(samples, errors, **REST_ECHO, kind="broken_stream") == 1
    assert value(samples, errors, **REST_ECHO, kind="status_5xx") == 2
    assert value(samples, errors, **REST_ECHO, kind="other") == 1
    assert len(series_of(samples, errors)) == 5


def test_labels_come_from_the_snapshot_not_from_the_request():
    metrics = Metrics()
    # The product was not found: its slug is whatever the caller put in the path.
    metrics.observe(record(product_id=None, product_slug="typed-by-caller", route_id=None, status=404))
    # Found, but no route matched: the product's own upstream.
    metrics.observe(record(route_id=None))
    # No answer was sent at all (the client went away).
    metrics.observe(record(status=0))

    samples = rendered(metrics)

    assert value(samples, "gateway_requests_total", protocol="rest", product="", route="", status_class="4xx") == 1
    assert value(samples, "gateway_requests_total", protocol="rest", product="echo", route="", status_class="2xx") == 1
    assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="unknown") == 1
    assert "typed-by-caller" not in metrics.render().decode()


def test_label_values_are_escaped():
    metrics = Metrics()
    slug = 'we"ird\\slug\nnext'
    metrics.observe(record(product_slug=slug, upstream_error="timeout"))
    text = metrics.render().decode()

    assert 'product="we\\"ird\\\\slug\\nnext"' in text
    samples = parse(text)[1]  # and every line still parses
    assert value(samples, "gateway_requests_total", protocol="rest", product=slug, route="2", status_class="2xx") == 1
    assert value(samples, "gateway_request_duration_seconds_count", protocol="rest", product=slug, route="2") == 1


def test_label_sets_past_the_cap_are_folded_into_other_and_counted():
    metrics = Metrics(max_series=3)
    for number in range(5):
        metrics.observe(record(product_id=number, product_slug=f"p{number}", route_id=number, upstream_latency_s=0.01))
    metrics.observe(record(product_id=9, product_slug="p9", route_id=9, upstream_error="timeout"))

    samples = rendered(metrics)

    requests = series_of(samples, "gateway_requests_total")
    assert {labels["product"] for labels in requests} == {"p0", "p1", "p2", "other"}
    folded = {"protocol": "rest", "product": "other", "route": "other"}
    assert value(samples, "gateway_requests_total", **folded, status_class="2xx") == 3
    assert value(samples, "gateway_request_duration_seconds_count", **folded) == 3
    assert value(samples, "gateway_upstream_duration_seconds_count", **folded) == 2
    # The upstream errors family had room: its one series is kept as it is.
    assert (
        value(samples, "gateway_upstream_errors_total", protocol="rest", product="p9", route="9", kind="timeout") == 1
    )
    overflow = "gateway_metrics_label_overflow_total"
    assert value(samples, overflow, metric="gateway_requests_total") == 3
    assert value(samples, overflow, metric="gateway_request_duration_seconds") == 3
    assert value(samples, overflow, metric="gateway_upstream_duration_seconds") == 2
    assert value(samples, overflow, metric="gateway_upstream_errors_total") is None


def test_the_default_cap_bounds_a_flood_of_products():
    metrics = Metrics()
    for number in range(2_100):
        metrics.observe(record(product_id=number, product_slug=f"p{number}"))
    samples = rendered(metrics)
    assert len(series_of(samples, "gateway_requests_total")) == 2_001
    assert value(samples, "gateway_metrics_label_overflow_total", metric="gateway_requests_total") == 100


# The application.


def settings_for(snapshot_dir: Path) -> WorkerSettings:
    return WorkerSettings(
        snapshot_dir=snapshot_dir, worker_id="metrics-test", poll_interval_s=0.01, heartbeat_interval_s=3600
    )


async def eventually(condition: Callable[[], object], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


Client = test_utils.TestClient[web.Request, web.Application]


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[Client]:
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        yield client


async def scrape(client: Client) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200
    return parse(await response.text())[1]


def test_register_metrics_adds_an_observer_that_notify_observers_reaches(snapshot_dir):
    app = create_app(settings_for(snapshot_dir), route_registrars=[register_metrics])
    metrics = app[METRICS_KEY]
    assert app[OBSERVERS_KEY] == [metrics]

    notify_observers(app, record(started=time.perf_counter() - 0.03))

    samples = rendered(metrics)
    assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="2xx") == 1
    # notify_observers finished the record: its duration is the time since it started.
    assert value(samples, "gateway_request_duration_seconds_bucket", **REST_ECHO, le="0.025") == 0
    assert value(samples, "gateway_request_duration_seconds_bucket", **REST_ECHO, le="+Inf") == 1


def test_the_worker_serves_metrics():
    assert register_metrics in REGISTRARS


async def test_metrics_answers_before_any_snapshot(snapshot_dir):
    async with serve(create_app(settings_for(snapshot_dir), route_registrars=[register_metrics])) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE
        assert response.headers["Cache-Control"] == "no-store"
        types, samples = parse(await response.text())

        assert value(samples, "gateway_snapshot_ready") == 0
        assert types["gateway_snapshot_version"] == "gauge"
        assert series_of(samples, "gateway_snapshot_version") == []
        assert series_of(samples, "gateway_snapshot_applied_timestamp_seconds") == []
        assert value(samples, "gateway_snapshot_applied_total") == 0
        assert value(samples, "gateway_build_info", version="0.1.0") == 1
        start = value(samples, "gateway_process_start_time_seconds")
        assert start is not None
        assert start <= time.time()

        head = await client.head("/metrics")
        assert head.status == 200
        assert head.headers["Content-Type"] == CONTENT_TYPE
        assert await head.read() == b""


async def test_snapshot_gauges_follow_applied_and_refused_snapshots(snapshot_dir, folder):
    app = create_app(settings_for(snapshot_dir), route_registrars=[register_metrics])
    async with serve(app) as client:
        folder.publish(build_snapshot(3))
        await eventually(lambda: app[HOLDER_KEY].version == 3)

        samples = await scrape(client)
        assert value(samples, "gateway_snapshot_ready") == 1
        assert value(samples, "gateway_snapshot_version") == 3
        assert value(samples, "gateway_snapshot_applied_timestamp_seconds") == app[HOLDER_KEY].applied_at
        assert value(samples, "gateway_snapshot_applied_total") == 1

        folder.publish(dangling_snapshot(4))
        await eventually(lambda: app[HOLDER_KEY].counters.refused == 1)
        folder.publish(build_snapshot(5))
        await eventually(lambda: app[HOLDER_KEY].version == 5)

        samples = await scrape(client)
        assert value(samples, "gateway_snapshot_version") == 5
        assert value(samples, "gateway_snapshot_applied_total") == 2
        assert value(samples, "gateway_snapshot_refused_total") == 1
        assert value(samples, "gateway_snapshot_source_errors_total") == 0


# Real requests through the REST proxy to a loopback upstream.

PEPPER = "pepper:metrics-test"
KEY = "sk-metrics-0123456789"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_aiohttp(echo.create_app()) as url:
        yield url


def proxied_world(upstream: str) -> s.Snapshot:
    """Product "echo": route 4 for /anything, its own upstream otherwise."""
    own = s.Upstream(url=upstream)
    product = s.Product(
        id=1, slug="echo", kind="rest_api", organization_id=1, public=True, version_id=1, version="1", upstream=own
    )
    return s.Snapshot(
        version=1,
        created_at=time.time(),
        source_generation=1,
        products=(product,),
        plans=(s.Plan(id=1, product_id=1, name="Free", requests_per_minute=1000),),
        apps=(s.App(id=7, organization_id=1, name="A"),),
        keys=(s.Key(hash=keyed_hash(PEPPER, KEY), prefix="sk-metrics", app_id=7),),
        subscriptions=(s.Subscription(id=11, app_id=7, product_id=1, plan_id=1),),
        routes=(
            s.Route(
                id=4,
                product_id=1,
                match=s.RouteMatch(path_prefix="/anything"),
                targets=(s.Target(id=1, name="main", upstream=own),),
            ),
        ),
    )


async def test_proxied_requests_show_up_in_the_metrics(tmp_path, upstream):
    settings = WorkerSettings(
        snapshot_dir=tmp_path / "snapshots",
        worker_id="metrics-proxy-test",
        poll_interval_s=3600,
        heartbeat_interval_s=3600,
        key_hash_pepper=PEPPER,
    )
    app = create_app(settings, route_registrars=[register_rest_proxy, register_metrics])
    async with serve(app) as client:
        app[HOLDER_KEY].swap(CompiledSnapshot.build(proxied_world(upstream), sha256="0" * 64))
        auth = {"Authorization": f"Bearer {KEY}"}

        routed = await client.post("/api/echo/anything/x", data=b"0123456789", headers=auth)
        assert routed.status == 200
        routed_body = await routed.read()
        unrouted = await client.get("/api/echo/status/503", headers=auth)
        assert unrouted.status == 503
        unrouted_body = await unrouted.read()
        unknown = await client.get("/api/no-such-product/anything", headers=auth)
        assert unknown.status == 404
        unknown_body = await unknown.read()

        samples = await scrape(client)

    routed_labels = {"protocol": "rest", "product": "echo", "route": "4"}
    unrouted_labels = {"protocol": "rest", "product": "echo", "route": ""}
    assert value(samples, "gateway_requests_total", **routed_labels, status_class="2xx") == 1
    assert value(samples, "gateway_requests_total", **unrouted_labels, status_class="5xx") == 1
    assert value(samples, "gateway_requests_total", protocol="rest", product="", route="", status_class="4xx") == 1
    assert len(series_of(samples, "gateway_requests_total")) == 3
    assert value(samples, "gateway_request_duration_seconds_count", **routed_labels) == 1
    assert value(samples, "gateway_upstream_duration_seconds_count", **routed_labels) == 1
    assert value(samples, "gateway_upstream_duration_seconds_count", **unrouted_labels) == 1
    assert value(samples, "gateway_upstream_errors_total", **unrouted_labels, kind="status_5xx") == 1
    assert value(samples, "gateway_limiter_decisions_total", decision="allowed") == 2
    assert value(samples, "gateway_request_bytes_total", direction="in") == 10
    # Out: every body sent to a client, the gateway's own problem answers included.
    sent = len(routed_body) + len(unrouted_body) + len(unknown_body)
    assert value(samples, "gateway_request_bytes_total", direction="out") == sent
