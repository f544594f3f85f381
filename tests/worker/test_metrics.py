"""The worker's Prometheus metrics: the exposition text is strictly well formed, counters and
histograms add up for the requests observers are told about, label values are escaped, the
number of label sets is capped, and /metrics serves the snapshot's state. No Django."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis
from aiohttp import test_utils, web

from demo_upstreams import echo
from demo_upstreams.inprocess import serve_aiohttp
from gateway_sync.contract import schema as s
from gateway_sync.worker import metrics_shared as metrics_module
from gateway_sync.worker.__main__ import REGISTRARS
from gateway_sync.worker.app import HOLDER_KEY, OBSERVERS_KEY, create_app, notify_observers
from gateway_sync.worker.auth import keyed_hash
from gateway_sync.worker.metrics import CONTENT_TYPE, FRESH_S, WRITE_INTERVAL_S, Metrics, ProcessState, merge_states
from gateway_sync.worker.metrics_shared import (
    METRICS_KEY,
    SHARED_METRICS_KEY,
    SharedMetrics,
    pid_alive,
    register_metrics,
)
from gateway_sync.worker.processes import SUPERVISOR_PID_ENV, shared_metrics_dir
from gateway_sync.worker.proxy_rest import register_rest_proxy
from gateway_sync.worker.record import RequestRecord
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.state import CompiledSnapshot, SnapshotHolder
from tests.worker.processes import child_pids, fresh_get, start_supervisor, wait_for_children
from tests.worker.snapshots import RedisPublisher, build_snapshot, dangling_snapshot

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


# Several processes under a supervisor: raw states shared through files, merged at scrape.


def state_of(metrics: Metrics, *, pid: int, worker_id: str = "w-0", written_at: float | None = None) -> ProcessState:
    return metrics.state(pid=pid, worker_id=worker_id, now=time.time() if written_at is None else written_at)


def with_snapshot(version: int) -> SnapshotHolder:
    holder = SnapshotHolder()
    holder.swap(CompiledSnapshot.build(build_snapshot(version), sha256="0" * 64))
    return holder


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert not pid_alive(process.pid)
    return process.pid


def merged(states: list[ProcessState], live: list[ProcessState] | None = None, *, max_series: int = 2_000) -> Samples:
    return parse(merge_states(states, states if live is None else live, max_series=max_series).decode())[1]


def test_two_processes_states_are_summed():
    first, second = Metrics(with_snapshot(4)), Metrics(with_snapshot(4))
    first.observe(record(duration_s=0.003, upstream_latency_s=0.002, bytes_in=10, bytes_out=100))
    first.observe(record(status=404, duration_s=0.2, limit_decision="limited"))
    second.observe(record(duration_s=0.004, bytes_in=5, bytes_out=1))
    second.observe(record(product_slug="other-product", product_id=3, route_id=None, upstream_error="timeout"))

    samples = merged([state_of(first, pid=101), state_of(second, pid=102, worker_id="w-1")])

    assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="2xx") == 2
    assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="4xx") == 1
    other = {"protocol": "rest", "product": "other-product", "route": ""}
    assert value(samples, "gateway_requests_total", **other, status_class="2xx") == 1
    assert value(samples, "gateway_upstream_errors_total", **other, kind="timeout") == 1
    duration = "gateway_request_duration_seconds"
    assert value(samples, f"{duration}_bucket", **REST_ECHO, le="0.0025") == 0
    assert value(samples, f"{duration}_bucket", **REST_ECHO, le="0.005") == 2
    assert value(samples, f"{duration}_bucket", **REST_ECHO, le="+Inf") == 3
    assert value(samples, f"{duration}_sum", **REST_ECHO) == pytest.approx(0.207)
    assert value(samples, "gateway_upstream_duration_seconds_count", **REST_ECHO) == 1
    assert value(samples, "gateway_limiter_decisions_total", decision="unlimited") == 3
    assert value(samples, "gateway_limiter_decisions_total", decision="limited") == 1
    assert value(samples, "gateway_request_bytes_total", direction="in") == 15
    assert value(samples, "gateway_request_bytes_total", direction="out") == 101
    assert value(samples, "gateway_snapshot_applied_total") == 2
    assert value(samples, "gateway_snapshot_version") == 4
    assert value(samples, "gateway_snapshot_ready") == 1
    assert value(samples, "gateway_worker_processes") == 2


def test_a_single_process_renders_the_same_families_as_a_merge_of_its_own_state():
    metrics = Metrics(with_snapshot(2))
    metrics.observe(record(duration_s=0.01, upstream_latency_s=0.005, upstream_error="timeout"))
    alone = rendered(metrics)
    assert value(alone, "gateway_worker_processes") == 1
    assert merged([state_of(metrics, pid=7)]) == alone


def test_an_exited_process_keeps_its_counters_but_not_its_gauges(tmp_path):
    # This process serves snapshot 5; the one that exited served 9 and counted 3 requests.
    exited = Metrics(with_snapshot(9))
    for _ in range(3):
        exited.observe(record(status=404))
    (tmp_path / "w-1.1.json").write_bytes(msgspec.json.encode(state_of(exited, pid=dead_pid(), worker_id="w-1")))
    # A sibling that is alive but stopped writing long ago (hung, or its pid was reused).
    stale = Metrics(with_snapshot(1))
    stale.observe(record(status=500))
    long_ago = time.time() - FRESH_S - 5
    stale_state = state_of(stale, pid=os.getppid(), worker_id="w-2", written_at=long_ago)
    (tmp_path / "w-2.2.json").write_bytes(msgspec.json.encode(stale_state))
    # A live sibling, not ready yet.
    starting = Metrics(SnapshotHolder())
    (tmp_path / "w-3.3.json").write_bytes(msgspec.json.encode(state_of(starting, pid=os.getppid(), worker_id="w-3")))
    holder = with_snapshot(5)
    mine = Metrics(holder)
    mine.observe(record())
    shared = SharedMetrics(mine, tmp_path, "w-0")

    samples = parse(shared.render().decode())[1]

    assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="4xx") == 3
    assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="5xx") == 1
    assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="2xx") == 1
    assert value(samples, "gateway_snapshot_applied_total") == 3  # 9, 1 and 5 were applied once each
    # Gauges: this process and w-3 only.
    assert value(samples, "gateway_worker_processes") == 2
    assert value(samples, "gateway_snapshot_version") == 5
    assert value(samples, "gateway_snapshot_applied_timestamp_seconds") == holder.applied_at
    assert value(samples, "gateway_snapshot_ready") == 0  # w-3 has no snapshot yet
    # Rendering wrote this process's own file, with what it just showed.
    own = msgspec.json.decode((tmp_path / f"w-0.{os.getpid()}.json").read_bytes(), type=ProcessState)
    assert own.counters["gateway_requests_total"] == [(("rest", "echo", "2", "2xx"), 1)]
    assert own.gauges.version == 5


def test_the_label_set_cap_holds_after_merging_in_the_same_way_whoever_merges():
    first, second = Metrics(max_series=3), Metrics(max_series=3)
    for number in range(3):
        first.observe(record(product_id=number, product_slug=f"a{number}", route_id=number))
        second.observe(record(product_id=number, product_slug=f"b{number}", route_id=number))
        second.observe(record(product_id=number, product_slug=f"b{number}", route_id=number))
    older = state_of(first, pid=1)
    older.started_at -= 10  # started first: its label sets are admitted first
    newer = state_of(second, pid=2, worker_id="w-1")

    samples = merged([older, newer], max_series=3)

    assert merge_states([newer, older], [newer, older], max_series=3) == merge_states(
        [older, newer], [older, newer], max_series=3
    )
    requests = series_of(samples, "gateway_requests_total")
    assert {labels["product"] for labels in requests} == {"a0", "a1", "a2", "other"}
    folded = {"protocol": "rest", "product": "other", "route": "other"}
    assert value(samples, "gateway_requests_total", **folded, status_class="2xx") == 6
    assert value(samples, "gateway_request_duration_seconds_count", **folded) == 6
    overflow = "gateway_metrics_label_overflow_total"
    assert value(samples, overflow, metric="gateway_requests_total") == 6
    assert value(samples, overflow, metric="gateway_request_duration_seconds") == 6


def test_series_already_folded_by_a_process_are_not_counted_as_overflow_twice():
    first, second = Metrics(max_series=1), Metrics(max_series=1)
    first.observe(record(product_slug="a", product_id=1))
    second.observe(record(product_slug="b", product_id=2))
    second.observe(record(product_slug="c", product_id=3))  # folded by the second process itself
    older = state_of(first, pid=1)
    older.started_at -= 10

    samples = merged([older, state_of(second, pid=2, worker_id="w-1")], max_series=1)

    folded = {"protocol": "rest", "product": "other", "route": "other"}
    assert value(samples, "gateway_requests_total", **folded, status_class="2xx") == 2
    # One folded in the second process, one (b) at the merge.
    assert value(samples, "gateway_metrics_label_overflow_total", metric="gateway_requests_total") == 2


@pytest.fixture
def supervised(tmp_path, monkeypatch) -> Path:
    """register_metrics as under a supervisor, sharing through ``tmp_path / "shared"``."""
    shared_dir = tmp_path / "shared"
    shared_dir.mkdir()
    monkeypatch.setenv(SUPERVISOR_PID_ENV, str(os.getppid()))
    monkeypatch.setattr(metrics_module, "shared_metrics_dir", lambda pid: shared_dir)
    return shared_dir


async def test_corrupt_or_half_written_files_are_skipped_and_logged_once(snapshot_dir, supervised, caplog):
    sibling = Metrics(with_snapshot(3))
    sibling.observe(record())
    good = msgspec.json.encode(state_of(sibling, pid=os.getppid(), worker_id="w-1"))
    (supervised / "w-1.1.json").write_bytes(good)
    (supervised / "w-2.2.json").write_bytes(good[: len(good) // 2])  # half written
    (supervised / "w-3.3.json").write_bytes(b"\x00garbage")
    (supervised / "w-4.4.json").write_bytes(good.replace(b'"pid":', b'"pid":"x","was":'))  # wrong type
    wrong_labels = state_of(sibling, pid=os.getppid(), worker_id="w-5")
    wrong_labels.counters["gateway_requests_total"] = [(("rest",), 1)]
    (supervised / "w-5.5.json").write_bytes(msgspec.json.encode(wrong_labels))
    (supervised / ".w-6.6.json.abc.tmp").write_bytes(b"{")  # a write in progress: not listed

    app = create_app(settings_for(snapshot_dir), route_registrars=[register_metrics])
    with caplog.at_level("WARNING", logger="gateway_sync.worker.metrics"):
        async with serve(app) as client:
            for _ in range(2):
                samples = await scrape(client)
                assert value(samples, "gateway_requests_total", **REST_ECHO, status_class="2xx") == 1
                assert value(samples, "gateway_worker_processes") == 2

    skipped = sorted(r.getMessage().split("/")[-1] for r in caplog.records if " skipped: " in r.getMessage())
    assert [line.split(" ")[0] for line in skipped] == ["w-2.2.json", "w-3.3.json", "w-4.4.json", "w-5.5.json"]


async def test_under_a_supervisor_the_state_is_written_periodically_and_at_shutdown(snapshot_dir, supervised):
    app = create_app(settings_for(snapshot_dir), route_registrars=[register_metrics])
    app[SHARED_METRICS_KEY].interval_s = 0.05
    path = supervised / f"metrics-test.{os.getpid()}.json"

    def requests_written() -> float:
        if not path.exists():
            return -1
        state = msgspec.json.decode(path.read_bytes(), type=ProcessState)
        return sum(count for _key, count in state.counters["gateway_requests_total"])

    async with serve(app):
        await eventually(lambda: requests_written() == 0)
        notify_observers(app, record())
        await eventually(lambda: requests_written() == 1)
        app[SHARED_METRICS_KEY].interval_s = 3600  # only the final write is left
        await asyncio.sleep(0.1)
        notify_observers(app, record())
        assert requests_written() == 1
    assert requests_written() == 2


def test_without_a_supervisor_nothing_is_shared(snapshot_dir, monkeypatch):
    monkeypatch.delenv(SUPERVISOR_PID_ENV, raising=False)
    app = create_app(settings_for(snapshot_dir), route_registrars=[register_metrics])
    assert SHARED_METRICS_KEY not in app
    assert len(app.cleanup_ctx) == 1  # the snapshot machinery's alone


# Real processes: GATEWAY_WORKERS=2 on one port, Redis.


@pytest.mark.slow
def test_two_processes_answer_metrics_with_the_same_totals(redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    try:
        RedisPublisher(client).publish(build_snapshot(1))
    finally:
        client.close()
    env = {"REDIS_URL": redis_url, "KEY_HASH_PEPPER": PEPPER, "HEARTBEAT_INTERVAL_S": "0.3"}
    sent = 60
    with httpx.Client(timeout=10) as http:
        sup = start_supervisor("metrics-pair", env, tmp_path, http, workers=2)
        try:
            wait_for_children(sup, {"metrics-pair-0", "metrics-pair-1"})
            shared_dir = shared_metrics_dir(sup.process.pid)
            assert shared_dir.is_dir()
            statuses = [fresh_get(f"{sup.url}/api/no-such-product/y").status_code for _ in range(sent)]
            assert statuses == [404] * sent
            time.sleep(WRITE_INTERVAL_S + 0.5)

            # Both children served some: each one's file counts its own share.
            shares = {}
            for path in shared_dir.glob("*.json"):
                state = msgspec.json.decode(path.read_bytes(), type=ProcessState)
                shares[state.worker_id] = sum(count for _key, count in state.counters["gateway_requests_total"])
            assert set(shares) == {"metrics-pair-0", "metrics-pair-1"}
            assert sum(shares.values()) == sent
            assert min(shares.values()) > 0, shares

            unknown = {"protocol": "rest", "product": "", "route": "", "status_class": "4xx"}

            def totals() -> list[tuple[float | None, float | None, float | None]]:
                scrapes = [parse(fresh_get(f"{sup.url}/metrics").text)[1] for _ in range(12)]
                return [
                    (
                        value(samples, "gateway_requests_total", **unknown),
                        value(samples, "gateway_worker_processes"),
                        value(samples, "gateway_snapshot_version"),
                    )
                    for samples in scrapes
                ]

            assert set(totals()) == {(sent, 2, 1)}

            # A child killed and replaced: its numbers stay in the totals.
            killed = child_pids(sup)["metrics-pair-0"][0]
            os.kill(killed, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while len(child_pids(sup).get("metrics-pair-0", [])) < 2:
                assert time.monotonic() < deadline, sup.log()
                time.sleep(0.05)
            wait_for_children(sup, {"metrics-pair-0"})
            more = [fresh_get(f"{sup.url}/api/no-such-product/y").status_code for _ in range(10)]
            assert more == [404] * 10
            time.sleep(WRITE_INTERVAL_S + 0.5)
            assert set(totals()) == {(sent + 10, 2, 1)}
            assert len(list(shared_dir.glob("*.json"))) == 3
            assert sup.stop() == 0, sup.log()
        finally:
            if sup.process.poll() is None:
                sup.stop()
    assert not shared_dir.exists()
