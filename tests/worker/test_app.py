"""The worker's application in process: /healthz, /readyz before and after a snapshot, JSON
errors, heartbeats in var/workers/, and requests that keep the snapshot they started with."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import test_utils, web

from gateway_sync.worker.app import HOLDER_KEY, create_app, request_snapshot
from gateway_sync.worker.settings import WorkerSettings
from tests.worker.snapshots import build_snapshot, dangling_snapshot

pytestmark = pytest.mark.anyio


def settings_for(snapshot_dir: Path) -> WorkerSettings:
    return WorkerSettings(
        snapshot_dir=snapshot_dir, worker_id="worker-a", poll_interval_s=0.01, heartbeat_interval_s=0.05
    )


async def eventually(condition: Callable[[], object], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def ready_version(client: test_utils.TestClient[web.Request, web.Application]) -> int | None:
    response = await client.get("/readyz")
    return (await response.json())["snapshot_version"]


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[test_utils.TestClient[web.Request, web.Application]]:
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        yield client


@pytest.fixture
async def client(snapshot_dir):
    async with serve(create_app(settings_for(snapshot_dir))) as client:
        yield client


async def test_healthz_answers_at_once(client):
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_503_until_a_snapshot_is_applied_then_200_with_its_version(client, folder):
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {
        "ready": False,
        "snapshot_version": None,
        "worker_id": "worker-a",
        "last_error": None,
    }

    folder.publish(build_snapshot(1))
    await eventually(lambda: client.app[HOLDER_KEY].version == 1)

    response = await client.get("/readyz")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["ready"] is True
    assert (body["snapshot_version"], body["source_generation"], body["worker_id"]) == (1, 10, "worker-a")
    assert isinstance(body["applied_at"], float)
    assert len(body["snapshot_sha256"]) == 64
    assert body["last_error"] is None


async def test_a_refused_snapshot_leaves_the_worker_ready_on_its_last_good_one(client, folder):
    folder.publish(build_snapshot(1))
    await eventually(lambda: client.app[HOLDER_KEY].version == 1)
    folder.publish(dangling_snapshot(2))
    await eventually(lambda: client.app[HOLDER_KEY].counters.refused == 1)
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["snapshot_version"] == 1
    assert body["last_error"].startswith("snapshot 2 refused: inconsistent: key sk-dangling names unknown app 404")


async def test_an_unknown_path_or_method_answers_json(client):
    response = await client.get("/nowhere")
    assert response.status == 404
    assert await response.json() == {"error": "not_found", "detail": "/nowhere is not an endpoint of this gateway"}
    response = await client.post("/readyz")
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_the_heartbeat_is_written_to_var_workers_and_withdrawn_on_shutdown(snapshot_dir, folder):
    beat_file = snapshot_dir.parent / "workers" / "worker-a.json"
    folder.publish(build_snapshot(1))
    async with serve(create_app(settings_for(snapshot_dir))) as client:
        await eventually(lambda: beat_file.exists() and json.loads(beat_file.read_text())["snapshot_version"] == 1)
        beat = json.loads(beat_file.read_text())
        assert beat["worker_id"] == "worker-a"
        assert beat["mode"] == "embedded"
        assert beat["counters"]["applied"] == 1
        assert await ready_version(client) == 1
    assert not beat_file.exists()


async def test_a_request_in_flight_keeps_the_snapshot_it_started_with(snapshot_dir, folder):
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        at_start = request_snapshot(request)
        started.set()
        await release.wait()
        # Whatever was swapped in meanwhile, this request still reads the snapshot it began with.
        snapshot = request_snapshot(request)
        assert snapshot is at_start
        assert snapshot is not None
        return web.json_response({"version": snapshot.version, "app": snapshot.apps_by_id[3].name})

    def add_slow_route(app: web.Application) -> None:
        app.router.add_get("/slow", slow)

    folder.publish(build_snapshot(1, app_name="Old"))
    async with serve(create_app(settings_for(snapshot_dir), route_registrars=[add_slow_route])) as client:
        holder = client.app[HOLDER_KEY]
        await eventually(lambda: holder.version == 1)
        request = asyncio.create_task(client.get("/slow"))
        await started.wait()
        folder.publish(build_snapshot(2, app_name="New"))
        await eventually(lambda: holder.version == 2)
        release.set()
        response = await request
        assert await response.json() == {"version": 1, "app": "Old"}
        response = await client.get("/slow")
        assert await response.json() == {"version": 2, "app": "New"}
