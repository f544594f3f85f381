"""Run a demo upstream inside the current process, on a free loopback port, for tests.

Each server gets its own event loop in a daemon thread, so synchronous tests (the ``openai``
SDK's blocking client) and asynchronous ones (the ``mcp`` client) can both talk to it over
real HTTP::

    with serve_aiohttp(echo.create_app()) as base_url:
        httpx.get(f"{base_url}/get")

The port is chosen by the kernel (bind to port 0), so parallel test workers never collide.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn
from aiohttp import web
from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"
_STARTUP_TIMEOUT = 10.0

_T = TypeVar("_T")


class _LoopThread:
    """An event loop running forever in a daemon thread, until ``close()``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], *, timeout: float = _STARTUP_TIMEOUT) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Cancel what is still running (as ``asyncio.run`` does), then stop and close the loop.

        Libraries leave watchers behind (sse-starlette polls for a uvicorn shutdown signal it
        cannot see outside the main thread); they must not outlive the loop."""
        self.run(_cancel_remaining_tasks())
        self.run(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _cancel_remaining_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextmanager
def serve_aiohttp(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on ``127.0.0.1:<free port>``; yield its base URL (no trailing slash).

    On exit the server stops accepting, finishes in-flight requests (aiohttp's graceful
    shutdown) and its loop is closed.
    """
    loop_thread = _LoopThread("demo-upstream-aiohttp")
    runner = web.AppRunner(app, access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        address = runner.addresses[0]
        return int(address[1])

    try:
        port = loop_thread.run(start())
        try:
            yield f"http://{LOOPBACK}:{port}"
        finally:
            loop_thread.run(runner.cleanup(), timeout=60.0)
    finally:
        loop_thread.close()


@contextmanager
def serve_asgi(build: Callable[[int], ASGIApp]) -> Iterator[str]:
    """Serve the ASGI application ``build(port)`` with uvicorn on ``127.0.0.1:<free port>``;
    yield its base URL.

    The application is built from the port because an MCP server pins the Host headers it
    accepts to its own address (DNS-rebinding protection).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(build(port), log_config=None, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    loop_thread = _LoopThread("demo-upstream-asgi")
    serving = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), loop_thread.loop)
    try:
        loop_thread.run(_wait_until_started(server, serving))
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        serving.result(timeout=60.0)
        loop_thread.close()
        sock.close()


async def _wait_until_started(server: uvicorn.Server, serving: concurrent.futures.Future[None]) -> None:
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it, if anything did
            raise RuntimeError("uvicorn stopped before it started serving")
        await asyncio.sleep(0.01)
