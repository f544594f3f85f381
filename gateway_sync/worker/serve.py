"""Serving one worker process until SIGTERM or SIGINT, then draining it.

aiohttp's ``run_app`` stops on a signal by closing every idle keep-alive connection at
once, so a load balancer polling ``/readyz`` on such a connection never learns that the
worker is going. ``serve`` drains instead:

1. The first SIGTERM or SIGINT starts the drain: ``/readyz`` answers 503
   ``{"ready": false, "draining": true, ...}`` and the listening socket is closed, so new
   connections go to the other processes on the port (SO_REUSEPORT) or are refused.
2. Open connections are still served. Every response sent while draining carries
   ``Connection: close``, so each client moves elsewhere after its next answer.
3. The drain ends when no request is in flight (streamed responses included), or after
   ``shutdown_timeout_s``: what is still running then is cancelled.
4. Then the application's cleanup runs: idle connections closed, background tasks
   stopped, heartbeat withdrawn.

A second SIGTERM or SIGINT cancels the requests still in flight at once.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import NoReturn

from aiohttp import hdrs, web

from gateway_sync.worker.settings import WorkerSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LISTEN_BACKLOG = 4096
# What aiohttp's own connection shutdown may still wait once the drain is over.
AFTER_DRAIN_TIMEOUT_S = 2.0
# The cleanup after the drain (background tasks, final flushes, clients closed) normally
# takes milliseconds; past this, something is stuck, and the process must still end.
CLEANUP_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


class CannotListen(Exception):
    """The host and port could not be bound (taken, or not an address of this machine)."""


class Drain:
    """What the worker knows about its own stopping: whether it is draining, and which
    requests are still in flight (counted by ``track_requests``)."""

    def __init__(self) -> None:
        self.draining = False
        self._in_flight: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def begin(self) -> None:
        self.draining = True

    def enter(self, task: asyncio.Task[object]) -> None:
        self._in_flight.add(task)
        self._idle.clear()

    def leave(self, task: asyncio.Task[object]) -> None:
        self._in_flight.discard(task)
        if not self._in_flight:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True once no request is in flight; False if some still are after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see usage_emitter.UsageEmitter.run
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def abandon(self) -> int:
        """Cancel every request still in flight; how many there were."""
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        return len(tasks)


DRAIN_KEY = web.AppKey("drain", Drain)


def install_drain(app: web.Application) -> None:
    """Give ``app`` a Drain, count its requests, and close connections once it drains.
    The counting middleware goes first, so it sees every request whole."""
    app[DRAIN_KEY] = Drain()
    app.middlewares.insert(0, track_requests)
    app.on_response_prepare.append(close_connections_while_draining)


@web.middleware
async def track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    drain = request.app[DRAIN_KEY]
    task = asyncio.current_task()
    if task is None:  # never under aiohttp: a handler always runs in a task
        return await handler(request)
    drain.enter(task)
    try:
        return await handler(request)
    finally:
        drain.leave(task)


async def close_connections_while_draining(request: web.Request, response: web.StreamResponse) -> None:
    if request.app[DRAIN_KEY].draining:
        # aiohttp has written its Connection header already when this hook runs: set both.
        response.force_close()
        response.headers[hdrs.CONNECTION] = "close"


async def serve(app: web.Application, settings: WorkerSettings, *, reuse_port: bool = False) -> None:
    """Serve ``app`` on the settings' host and port until a signal, then drain (see the
    module docstring). ``reuse_port``: bind with SO_REUSEPORT, beside sibling processes.
    Raises CannotListen if the port cannot be bound."""
    if DRAIN_KEY not in app:
        install_drain(app)
    drain = app[DRAIN_KEY]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.is_set():
            log.info(
                "worker %s: %s: draining (%d requests in flight)", settings.worker_id, signum.name, drain.in_flight
            )
            stop.set()
        else:
            log.warning(
                "worker %s: %s again: cancelling %d requests in flight",
                settings.worker_id,
                signum.name,
                drain.abandon(),
            )

    # aiohttp's own shutdown (runner.cleanup) gets only what is left after the drain, which
    # already waited up to shutdown_timeout_s for the requests in flight (or cancelled them):
    # giving it the whole timeout again let a worker take twice as long to stop.
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=min(AFTER_DRAIN_TIMEOUT_S, settings.shutdown_timeout_s)
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await runner.setup()
        # aiohttp's default backlog (128) drops the SYNs of a burst of new connections, which
        # then wait out 1 s and 3 s retransmissions; the kernel caps this at somaxconn anyway.
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None, backlog=LISTEN_BACKLOG)
        try:
            await site.start()
        except OSError as exc:
            raise CannotListen(f"cannot listen on {settings.host}:{settings.port}: {exc}") from exc
        await stop.wait()
        drain.begin()
        await site.stop()
        if not await drain.wait_idle(settings.shutdown_timeout_s):
            log.warning(
                "%d requests still in flight after %.1f s: cancelled", drain.abandon(), settings.shutdown_timeout_s
            )
    finally:
        # The signal handlers stay until the loop closes: a signal during the cleanup only
        # cancels what is left (drain.abandon), it does not kill the process.
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                await runner.cleanup()
        except TimeoutError:
            _stop_stuck(settings.worker_id)


def _stop_stuck(worker_id: str) -> NoReturn:
    """A cleanup that does not finish: log every task's stack (what to fix next) and end
    the process, since a task that ignores cancellation would also hang the loop's close."""
    log.error("worker %s: cleanup still running after %.0f s; stopping anyway", worker_id, CLEANUP_TIMEOUT_S)
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current:
            stack = io.StringIO()
            task.print_stack(file=stack)
            log.error("pending task %s:\n%s", task.get_name(), stack.getvalue())
    logging.shutdown()
    os._exit(0)
