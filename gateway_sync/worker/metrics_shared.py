"""``/metrics`` on the worker: this process's numbers, or under a supervisor (processes.py)
every process's, merged.

Several processes share one port there, and a scrape reaches whichever accepts the
connection, so each process writes its raw state to the supervisor's folder and the one
answering merges them all (``merge_states`` in metrics.py; the rules are in that module's
docstring). A lone process (no ``GATEWAY_SUPERVISOR_PID``) writes no file and starts no task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
from aiohttp import web

from gateway_sync.worker.app import HOLDER_KEY, NO_STORE, OBSERVERS_KEY, SETTINGS_KEY
from gateway_sync.worker.heartbeat import write_atomically
from gateway_sync.worker.metrics import (
    CONTENT_TYPE,
    FRESH_S,
    WRITE_INTERVAL_S,
    Metrics,
    ProcessState,
    check_state,
    merge_states,
)
from gateway_sync.worker.processes import SUPERVISOR_PID_ENV, shared_metrics_dir
from gateway_sync.worker.supervisor import BackgroundTasks

log = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ProcessState)


class SharedMetrics:
    """Under a supervisor: this process's state written to the supervisor's folder, and
    ``/metrics`` answered with every process's numbers (see the module docstring)."""

    def __init__(
        self,
        metrics: Metrics,
        directory: Path,
        worker_id: str,
        *,
        pid: int | None = None,
        interval_s: float = WRITE_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.directory = directory
        self.worker_id = worker_id
        self.pid = os.getpid() if pid is None else pid
        self.path = directory / f"{worker_id}.{self.pid}.json"
        self.interval_s = interval_s
        self._clock = clock
        # Files already reported as unreadable, by name and modification time: logged once.
        self._reported: set[tuple[str, int]] = set()
        self._write_failing = False

    def state(self) -> ProcessState:
        return self.metrics.state(pid=self.pid, worker_id=self.worker_id, now=self._clock())

    def write(self) -> bytes:
        """Write this process's state (atomically: temporary file, then rename), and return
        it encoded. A failure is logged (once until a write succeeds again), not raised."""
        data = _encoder.encode(self.state())
        try:
            write_atomically(self.path, data)
        except OSError as exc:
            if not self._write_failing:
                log.warning("cannot write this worker's metrics to %s: %s", self.path, exc)
            self._write_failing = True
        else:
            self._write_failing = False
        return data

    async def run(self) -> None:
        while True:
            self.write()
            await asyncio.sleep(self.interval_s)

    def load(self, own: ProcessState) -> tuple[list[ProcessState], list[ProcessState]]:
        """Every process's state (``own`` for this one) and the live ones among them."""
        states = [own]
        live = [own]
        fresh_since = own.written_at - FRESH_S
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:  # pragma: no cover (the folder vanished while listed)
            paths = []
        for path in paths:
            if path == self.path:
                continue
            state = self._read(path)
            if state is None:
                continue
            states.append(state)
            if state.written_at >= fresh_since and state.pid != self.pid and pid_alive(state.pid):
                live.append(state)
        return states, live

    def _read(self, path: Path) -> ProcessState | None:
        try:
            modified = path.stat().st_mtime_ns
            data = path.read_bytes()
        except FileNotFoundError:  # removed since listed
            return None
        except OSError as exc:
            self._report(path, 0, exc)
            return None
        try:
            state = _decoder.decode(data)
            check_state(state)
        except (msgspec.DecodeError, ValueError) as exc:  # a ValidationError is a DecodeError
            self._report(path, modified, exc)
            return None
        return state

    def _report(self, path: Path, modified: int, exc: Exception) -> None:
        if (path.name, modified) not in self._reported:
            self._reported.add((path.name, modified))
            log.warning("metrics file %s skipped: %s", path, exc)

    def render(self) -> bytes:
        """Every process's numbers merged. This process's state is written first, so that
        whatever this answer shows is on disk should the process die right after."""
        return self.merge(self.write())

    async def render_off_loop(self) -> bytes:
        """``render``, with the reading and merging in a thread: at 2,000 label sets per
        family, merging four processes takes about 150 ms. Only the encoding of this
        process's live state (a few ms at most) runs on the event loop."""
        return await asyncio.to_thread(self.merge, self.write())

    def merge(self, own: bytes) -> bytes:
        """This process's encoded state merged with the other files of the folder."""
        states, live = self.load(_decoder.decode(own))
        return merge_states(states, live, max_series=self.metrics.max_series)


METRICS_KEY = web.AppKey("metrics", Metrics)
SHARED_METRICS_KEY = web.AppKey("shared_metrics", SharedMetrics)
METRICS_HEADERS = {**NO_STORE, "Content-Type": CONTENT_TYPE}


def supervisor_pid() -> int | None:
    """The supervisor's pid when this process runs under one (processes.py), else None."""
    raw = os.environ.get(SUPERVISOR_PID_ENV, "")
    return int(raw) if raw.isdigit() else None


def register_metrics(app: web.Application) -> None:
    """Count every proxied request and serve ``GET /metrics`` (and HEAD). Under a
    supervisor, also share the numbers with the sibling processes."""
    metrics = Metrics(app[HOLDER_KEY])
    app[METRICS_KEY] = metrics
    app[OBSERVERS_KEY].append(metrics)
    app.router.add_get("/metrics", metrics_endpoint, allow_head=True)
    supervisor = supervisor_pid()
    if supervisor is not None:
        directory = shared_metrics_dir(supervisor)
        app[SHARED_METRICS_KEY] = SharedMetrics(metrics, directory, app[SETTINGS_KEY].worker_id)
        app.cleanup_ctx.append(_shared_metrics_lifespan)


async def _shared_metrics_lifespan(app: web.Application) -> AsyncIterator[None]:
    shared = app[SHARED_METRICS_KEY]
    tasks = BackgroundTasks()
    tasks.start("metrics-writer", shared.run)
    try:
        yield
    finally:
        await tasks.stop()
        # The server has stopped: every request has been counted. The final numbers.
        shared.write()


async def metrics_endpoint(request: web.Request) -> web.Response:
    app = request.app
    # Under a supervisor, every process's numbers; else this one's.
    if SHARED_METRICS_KEY in app:
        return web.Response(body=await app[SHARED_METRICS_KEY].render_off_loop(), headers=METRICS_HEADERS)
    return web.Response(body=app[METRICS_KEY].render(), headers=METRICS_HEADERS)
