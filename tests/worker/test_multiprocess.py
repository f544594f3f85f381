"""``GATEWAY_WORKERS``: several worker processes on one port under a supervisor, and the
graceful drain of a worker on SIGTERM. Real processes on loopback; Redis (database 14)
for the multi-process cases, since embedded mode refuses them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from aiohttp import web

from demo_upstreams.inprocess import serve_aiohttp
from gateway_sync.contract import schema as s
from gateway_sync.worker.auth import keyed_hash
from gateway_sync.worker.processes import FIRST_RESTART_DELAY_S, MAX_START_FAILURES, Supervisor
from gateway_sync.worker.settings import WorkerSettings
from tests.worker.processes import (
    ROOT,
    WorkerProcess,
    child_pids,
    free_port,
    port_is_free,
    start_supervisor,
    start_worker,
)
from tests.worker.snapshots import FolderPublisher, RedisPublisher

pytestmark = pytest.mark.slow

PEPPER = "pepper:multiprocess-test"
GOOD = "sk-good-multiprocess-0123456789"
SLOW_S = 1.0
STREAM_LINES = 5


class SlowUpstream:
    """A loopback upstream whose ``/slow`` answers after SLOW_S seconds; ``arrived`` is
    set as a request reaches it, so a test knows the request is in flight."""

    def __init__(self) -> None:
        self.arrived = threading.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/stream", self.stream)
        return app

    async def slow(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await asyncio.sleep(SLOW_S)
        return web.json_response({"slept": SLOW_S})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """STREAM_LINES lines over SLOW_S seconds, one write each."""
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for number in range(STREAM_LINES):
            await response.write(b'{"line": %d}\n' % number)
            self.arrived.set()
            await asyncio.sleep(SLOW_S / STREAM_LINES)
        await response.write_eof()
        return response


@pytest.fixture
def upstream() -> Iterator[tuple[SlowUpstream, str]]:
    slow = SlowUpstream()
    with serve_aiohttp(slow.app()) as url:
        yield slow, url


def world(version: int, upstream_url: str) -> s.Snapshot:
    """One product, ``slow``, proxied to ``upstream_url``; the key GOOD may call it."""
    product = s.Product(
        id=1,
        slug="slow",
        kind="rest_api",
        organization_id=1,
        public=True,
        version_id=1,
        version="1",
        upstream=s.Upstream(url=upstream_url),
    )
    return s.Snapshot(
        version=version,
        created_at=time.time(),
        source_generation=version,
        products=(product,),
        plans=(s.Plan(id=1, product_id=1, name="Free", requests_per_minute=10_000),),
        apps=(s.App(id=1, organization_id=1, name="App"),),
        keys=(s.Key(hash=keyed_hash(PEPPER, GOOD), prefix="sk-good", app_id=1),),
        subscriptions=(s.Subscription(id=1, app_id=1, product_id=1, plan_id=1),),
    )


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def inspector(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def redis_env(redis_url: str, inspector: redis.Redis, upstream: tuple[SlowUpstream, str]) -> dict[str, str]:
    """Workers on Redis, with a snapshot published that proxies ``slow`` to the upstream."""
    RedisPublisher(inspector).publish(world(1, upstream[1]))
    return {"REDIS_URL": redis_url, "KEY_HASH_PEPPER": PEPPER, "HEARTBEAT_INTERVAL_S": "0.3"}


def eventually(condition: Callable[[], object], *, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not met in {timeout} s"
        time.sleep(0.02)


def fresh_readyz(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    """/readyz on a new connection, so the kernel picks the process that accepts it."""
    with httpx.Client(timeout=5) as client:
        response = client.get(f"{worker.url}/readyz")
        return response.status_code, response.json()


def ready_worker_ids(worker: WorkerProcess, *, attempts: int = 40) -> set[str]:
    return {body["worker_id"] for status, body in (fresh_readyz(worker) for _ in range(attempts)) if status == 200}


def heartbeat(inspector: redis.Redis, worker_id: str) -> dict[str, Any] | None:
    raw = inspector.get(f"gateway:workers:{worker_id}")
    return None if raw is None else json.loads(raw)  # type: ignore[arg-type]


def slow_request(worker: WorkerProcess) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return client.get(f"{worker.url}/api/slow/slow", headers={"Authorization": f"Bearer {GOOD}"})


def stopped(worker: WorkerProcess) -> int:
    """Wait for the process (not signalled again); its exit code."""
    try:
        return worker.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait()
        raise AssertionError(f"{worker.worker_id} did not stop:\n{worker.log()}") from None


@contextlib.contextmanager
def supervisor(env: dict[str, str], tmp_path: Path, http: httpx.Client, name: str) -> Iterator[WorkerProcess]:
    process = start_supervisor(name, env, tmp_path, http, workers=2)
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.stop()


def test_two_processes_serve_one_port_and_both_become_ready(redis_env, inspector, http, tmp_path):
    with supervisor(redis_env, tmp_path, http, "pair") as sup:
        eventually(lambda: ready_worker_ids(sup) == {"pair-0", "pair-1"}, what="both children answer on the port")
        pids = child_pids(sup)
        assert set(pids) == {"pair-0", "pair-1"}
        assert len({pids["pair-0"][0], pids["pair-1"][0], sup.process.pid}) == 3
        for worker_id in ("pair-0", "pair-1"):
            eventually(lambda w=worker_id: (heartbeat(inspector, w) or {}).get("snapshot_version") == 1)
            assert heartbeat(inspector, worker_id)["pid"] == pids[worker_id][0]  # type: ignore[index]
        statuses = [fresh_readyz(sup) for _ in range(20)]
        assert {(status, body["snapshot_version"]) for status, body in statuses} == {(200, 1)}
        assert slow_request(sup).status_code == 200
        assert sup.stop() == 0, sup.log()
    assert heartbeat(inspector, "pair-0") is None
    assert heartbeat(inspector, "pair-1") is None
    assert port_is_free(sup.port)


def test_sigterm_to_the_supervisor_lets_a_slow_request_finish(redis_env, upstream, http, tmp_path):
    slow, _url = upstream
    with supervisor(redis_env, tmp_path, http, "drain") as sup:
        eventually(lambda: ready_worker_ids(sup) == {"drain-0", "drain-1"}, what="both children ready")
        with ThreadPoolExecutor(1) as pool:
            pending: Future[httpx.Response] = pool.submit(slow_request, sup)
            assert slow.arrived.wait(10), sup.log()
            started = time.monotonic()
            sup.process.send_signal(signal.SIGTERM)
            response = pending.result(timeout=10)
        assert response.status_code == 200, response.text
        assert response.json() == {"slept": SLOW_S}
        # Answered while draining: the client is told not to come back on this connection.
        assert response.headers["Connection"] == "close"
        assert stopped(sup) == 0, sup.log()
        assert time.monotonic() - started < 10
    log = sup.log()
    assert "draining (1 requests in flight)" in log
    assert log.count(") exited with code 0") == 2, log
    assert port_is_free(sup.port)
    with pytest.raises(httpx.ConnectError):
        http.get(f"{sup.url}/healthz")


def test_a_killed_child_is_restarted_and_serves_again(redis_env, inspector, http, tmp_path):
    with supervisor(redis_env, tmp_path, http, "phoenix") as sup:
        eventually(lambda: ready_worker_ids(sup) == {"phoenix-0", "phoenix-1"}, what="both children ready")
        first_pid = child_pids(sup)["phoenix-0"][0]
        os.kill(first_pid, signal.SIGKILL)

        eventually(lambda: len(child_pids(sup)["phoenix-0"]) == 2, what="phoenix-0 restarted")
        second_pid = child_pids(sup)["phoenix-0"][1]
        assert second_pid != first_pid
        assert f"worker phoenix-0 (pid {first_pid}) exited unexpectedly with code -9" in sup.log()
        eventually(lambda: (heartbeat(inspector, "phoenix-0") or {}).get("pid") == second_pid, what="new heartbeat")
        eventually(lambda: ready_worker_ids(sup) == {"phoenix-0", "phoenix-1"}, what="both serve again")
        assert child_pids(sup)["phoenix-1"] == child_pids(sup)["phoenix-1"][:1], "the other child was left alone"
        assert sup.stop() == 0, sup.log()


def test_embedded_mode_refuses_several_processes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {"GATEWAY_WORKERS": "2", "SNAPSHOT_DIR": str(tmp_path / "snapshots"), "GATEWAY_PORT": str(free_port())}
    result = subprocess.run(
        [sys.executable, "-m", "gateway_sync.worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "GATEWAY_WORKERS=2 needs REDIS_URL" in result.stderr
    assert "in-memory rate limits" in result.stderr


def test_a_taken_port_stops_the_supervisor_with_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in {"SNAPSHOT_DIR", "WORKER_ID"}}
        # Never contacted: the supervisor stops before any worker starts.
        env |= {"GATEWAY_WORKERS": "2", "REDIS_URL": "redis://127.0.0.1:1/14", "GATEWAY_PORT": str(port)}
        result = subprocess.run(
            [sys.executable, "-m", "gateway_sync.worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: address already in use; no worker started" in result.stderr


def test_a_single_worker_drains_a_slow_request_and_says_so_on_readyz(upstream, http, tmp_path):
    slow, url = upstream
    snapshot_dir = tmp_path / "var" / "snapshots"
    FolderPublisher(snapshot_dir).publish(world(1, url))
    env = {"SNAPSHOT_DIR": str(snapshot_dir), "KEY_HASH_PEPPER": PEPPER, "GATEWAY_WORKERS": "1"}
    worker = start_worker("single", env, tmp_path, http)
    try:
        eventually(lambda: worker.readyz(http)[0] == 200, what="ready")
        with httpx.Client(timeout=5) as keep_alive, ThreadPoolExecutor(1) as pool:
            assert keep_alive.get(f"{worker.url}/readyz").status_code == 200
            pending: Future[httpx.Response] = pool.submit(slow_request, worker)
            assert slow.arrived.wait(10), worker.log()
            worker.process.send_signal(signal.SIGTERM)

            # The open keep-alive connection is still served, and told that the worker is going.
            answers: list[httpx.Response] = []

            def draining() -> bool:
                answers.append(keep_alive.get(f"{worker.url}/readyz"))
                return answers[-1].status_code == 503

            eventually(draining, timeout=5, what="/readyz reports draining")
            assert not pending.done(), "the drain is seen while the slow request is in flight"
            assert answers[-1].json() == {
                "ready": False,
                "draining": True,
                "snapshot_version": 1,
                "worker_id": "single",
                "last_error": None,
            }
            assert answers[-1].headers["Connection"] == "close"
            assert {answer.status_code for answer in answers[:-1]} <= {200}
            slow_answer = pending.result(timeout=10)
        assert slow_answer.status_code == 200, slow_answer.text
        assert slow_answer.json() == {"slept": SLOW_S}
        assert stopped(worker) == 0, worker.log()
    finally:
        if worker.process.poll() is None:
            worker.stop()
    assert "single: SIGTERM: draining (1 requests in flight)" in worker.log()
    assert "worker single stopped" in worker.log()
    assert port_is_free(worker.port)


def test_children_failing_at_start_make_the_supervisor_give_up(tmp_path, caplog):
    settings = WorkerSettings(snapshot_dir=tmp_path, worker_id="doomed", poll_interval_s=1, port=free_port())
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    started = time.monotonic()
    with caplog.at_level("INFO", logger="gateway_sync.worker.processes"):
        assert Supervisor(settings, 2, command=failing).run() == 1
    elapsed = time.monotonic() - started
    # Restarted after 0.5 s, 1 s, 2 s: the delays grow, then it stops trying.
    assert elapsed >= FIRST_RESTART_DELAY_S * (2 ** (MAX_START_FAILURES - 1) - 1)
    assert elapsed < 15
    messages = [record.getMessage() for record in caplog.records]
    assert sum("doomed-0 started" in message for message in messages) == MAX_START_FAILURES
    assert any("restarting in 2.0 s" in message for message in messages)
    assert any(
        f"the {MAX_START_FAILURES} time in a row soon after its start: giving up" in message for message in messages
    )


def test_a_worker_lets_a_streamed_response_finish_before_it_stops(upstream, http, tmp_path):
    slow, url = upstream
    snapshot_dir = tmp_path / "var" / "snapshots"
    FolderPublisher(snapshot_dir).publish(world(1, url))
    env = {"SNAPSHOT_DIR": str(snapshot_dir), "KEY_HASH_PEPPER": PEPPER, "GATEWAY_WORKERS": "1"}
    worker = start_worker("streamer", env, tmp_path, http)

    def streamed() -> tuple[int, list[str]]:
        with (
            httpx.Client(timeout=10) as client,
            client.stream(
                "GET", f"{worker.url}/api/slow/stream", headers={"Authorization": f"Bearer {GOOD}"}
            ) as response,
        ):
            return response.status_code, list(response.iter_lines())

    try:
        eventually(lambda: worker.readyz(http)[0] == 200, what="ready")
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(streamed)
            assert slow.arrived.wait(10), worker.log()  # the stream has started
            worker.process.send_signal(signal.SIGTERM)
            status, lines = pending.result(timeout=10)
        assert status == 200
        assert lines == [f'{{"line": {number}}}' for number in range(STREAM_LINES)]
        assert stopped(worker) == 0, worker.log()
    finally:
        if worker.process.poll() is None:
            worker.stop()
    assert "streamer: SIGTERM: draining (1 requests in flight)" in worker.log()


def test_a_second_sigterm_cancels_the_requests_in_flight(upstream, http, tmp_path):
    slow, url = upstream
    snapshot_dir = tmp_path / "var" / "snapshots"
    FolderPublisher(snapshot_dir).publish(world(1, url))
    env = {"SNAPSHOT_DIR": str(snapshot_dir), "KEY_HASH_PEPPER": PEPPER, "GATEWAY_SHUTDOWN_TIMEOUT_S": "60"}
    worker = start_worker("hasty", {"GATEWAY_WORKERS": "1"} | env, tmp_path, http)
    try:
        eventually(lambda: worker.readyz(http)[0] == 200, what="ready")
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(slow_request, worker)
            assert slow.arrived.wait(10), worker.log()
            worker.process.send_signal(signal.SIGTERM)
            eventually(lambda: "draining (1 requests in flight)" in worker.log(), what="draining")
            worker.process.send_signal(signal.SIGTERM)
            assert stopped(worker) == 0, worker.log()
            # Cut off before the upstream's answer (a drained request would get its 200).
            with pytest.raises(httpx.TransportError):
                pending.result(timeout=10)
    finally:
        if worker.process.poll() is None:
            worker.stop()
    assert "hasty: SIGTERM again: cancelling 1 requests in flight" in worker.log()
    assert "worker hasty stopped" in worker.log()
