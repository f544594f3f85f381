"""The worker's aiohttp application: operations endpoints and the snapshot machinery.

``create_app(settings)`` builds an application whose lifespan (``cleanup_ctx``) starts the
snapshot loader and the heartbeat as supervised background tasks, and on shutdown cancels
and awaits them, withdraws the heartbeat and closes the Redis clients.

Endpoints: ``GET /healthz`` (the process answers), ``GET /readyz`` (200 once a snapshot is
applied, with its version; 503 before). Any other path answers a JSON 404.

Extension points for the proxy routes (the next issues):

- ``route_registrars``: callables that get the application and add routes, middlewares or
  further ``cleanup_ctx`` entries (such as a shared upstream client). They find the holder
  at ``app[HOLDER_KEY]`` and the settings at ``app[SETTINGS_KEY]``.
- A handler takes the current snapshot as it starts with ``request_snapshot(request)``
  (pinned at ``request[SNAPSHOT_KEY]``) and uses that one object until it ends, so a
  swap mid-request (or mid-stream) changes nothing for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio
from aiohttp import web

from gateway_sync.worker.heartbeat import (
    FileHeartbeatSink,
    Heartbeat,
    HeartbeatSink,
    RedisHeartbeatSink,
    WorkerIdentity,
)
from gateway_sync.worker.loader import SnapshotLoader
from gateway_sync.worker.record import RequestObserver, RequestRecord
from gateway_sync.worker.serve import DRAIN_KEY, install_drain
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.sources import FileSnapshotSource, RedisSnapshotSource, SnapshotSource, redis_client
from gateway_sync.worker.state import CompiledSnapshot, SnapshotHolder
from gateway_sync.worker.supervisor import BackgroundTasks

RouteRegistrar = Callable[[web.Application], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SETTINGS_KEY = web.AppKey("worker_settings", WorkerSettings)
HOLDER_KEY = web.AppKey("snapshot_holder", SnapshotHolder)
SNAPSHOT_KEY = web.RequestKey("snapshot", CompiledSnapshot)
# Told about every finished proxied request (record.py); registrars append to it.
OBSERVERS_KEY = web.AppKey("request_observers", list[RequestObserver])

NO_STORE = {"Cache-Control": "no-store"}

log = logging.getLogger(__name__)


def create_app(settings: WorkerSettings, *, route_registrars: Sequence[RouteRegistrar] = ()) -> web.Application:
    app = web.Application(middlewares=[json_errors])
    app[SETTINGS_KEY] = settings
    app[HOLDER_KEY] = SnapshotHolder()
    app[OBSERVERS_KEY] = []
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)
    install_drain(app)
    for register in route_registrars:
        register(app)
    app.cleanup_ctx.append(snapshot_machinery)
    return app


def request_snapshot(request: web.Request) -> CompiledSnapshot | None:
    """The snapshot this request started with; None if the worker had none yet.

    Pinned on the first call, which handlers make as they start (a middleware doing it
    cost every request a coroutine frame); every later call returns the same object."""
    pinned = request.get(SNAPSHOT_KEY)
    if pinned is None:
        pinned = request.app[HOLDER_KEY].current()
        if pinned is not None:
            request[SNAPSHOT_KEY] = pinned
    return pinned


def notify_observers(app: web.Application, record: RequestRecord) -> None:
    """Hand a finished request's record to every observer (they never raise or block)."""
    record.finish()
    for observer in app[OBSERVERS_KEY]:
        try:
            observer.observe(record)
        except Exception:  # an observer's bug must not turn a served request into an error
            log.exception("request observer %r failed", observer)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own error answers (unknown path, wrong method) as JSON. Proxy routes answer
    in their protocol's own error format and do not raise, so this leaves them alone."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status == 404:
            detail = f"{request.path} is not an endpoint of this gateway"
        elif exc.status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        else:
            detail = exc.reason
        code = exc.reason.lower().replace(" ", "_")
        return web.json_response({"error": code, "detail": detail}, status=exc.status, headers=headers)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers=NO_STORE)


async def readyz(request: web.Request) -> web.Response:
    """200 with the snapshot served once one is applied; 503 before, and 503 with
    ``"draining": true`` once the worker is stopping. A refused snapshot does not make a
    worker unready: it goes on serving its last good one."""
    holder = request.app[HOLDER_KEY]
    worker_id = request.app[SETTINGS_KEY].worker_id
    current = holder.current()
    last_error = holder.last_error or None
    if request.app[DRAIN_KEY].draining:  # stopping (serve.py): send traffic elsewhere
        body: dict[str, Any] = {
            "ready": False,
            "draining": True,
            "snapshot_version": None if current is None else current.version,
            "worker_id": worker_id,
            "last_error": last_error,
        }
        return web.json_response(body, status=503, headers=NO_STORE)
    if current is None:
        body = {
            "ready": False,
            "snapshot_version": None,
            "worker_id": worker_id,
            "last_error": last_error,
        }
        return web.json_response(body, status=503, headers=NO_STORE)
    body = {
        "ready": True,
        "snapshot_version": current.version,
        "source_generation": current.source_generation,
        "snapshot_sha256": current.sha256,
        "applied_at": holder.applied_at,
        "worker_id": worker_id,
        "last_error": last_error,
    }
    return web.json_response(body, headers=NO_STORE)


async def snapshot_machinery(app: web.Application) -> AsyncIterator[None]:
    """The lifespan: load and heartbeat in the background while the server runs."""
    settings = app[SETTINGS_KEY]
    holder = app[HOLDER_KEY]
    identity = WorkerIdentity(
        worker_id=settings.worker_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        started_at=time.time(),
        mode="embedded" if settings.embedded else "redis",
    )
    source: SnapshotSource
    sink: HeartbeatSink
    clients: list[redis.asyncio.Redis] = []
    if settings.embedded:
        source = FileSnapshotSource(settings.snapshot_dir)
        sink = FileHeartbeatSink(settings.workers_dir, settings.worker_id)
    else:
        name = f"gateway-worker:{settings.worker_id}"
        client = redis_client(settings.redis_url, client_name=name)
        listen_client = redis_client(settings.redis_url, client_name=f"{name}:announcements", retries=0)
        clients += [client, listen_client]
        source = RedisSnapshotSource(client, listen_client=listen_client)
        sink = RedisHeartbeatSink(client, settings.worker_id, ttl_s=3 * settings.heartbeat_interval_s)
    loader = SnapshotLoader(holder, source, settings)
    heartbeat = Heartbeat(identity, holder, sink, interval_s=settings.heartbeat_interval_s)
    tasks = BackgroundTasks(on_crash=lambda task, exc: holder.report_error(f"{task} crashed: {exc!r}"))
    loop = asyncio.get_running_loop()
    log.info("worker %s started (pid %d, %s event loop)", identity.worker_id, identity.pid, type(loop).__module__)
    tasks.start("snapshot-loader", loader.run)
    tasks.start("heartbeat", heartbeat.run)
    try:
        yield
    finally:
        await tasks.stop()
        await heartbeat.remove()
        await source.aclose()
        for client in clients:
            await client.aclose()
