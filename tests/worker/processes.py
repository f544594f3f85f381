"""Real worker processes (``python -m gateway_sync.worker``) for the tests, on free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
# Variables of the developer's shell that would change what a test worker does.
_CLEARED = {"REDIS_URL", "SNAPSHOT_DIR", "PLATFORM_VAR_DIR", "WORKER_ID", "GATEWAY_HOST", "GATEWAY_PORT"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WorkerProcess:
    worker_id: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def readyz(self, client: httpx.Client) -> tuple[int, dict[str, Any]]:
        response = client.get(f"{self.url}/readyz")
        return response.status_code, response.json()

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; the exit code (killed after 15 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker {self.worker_id} ignored SIGTERM:\n{self.log()}") from None


def _spawn(worker_id: str, env: dict[str, str], log_dir: Path) -> WorkerProcess:
    port = free_port()
    log_path = log_dir / f"{worker_id}.log"
    full_env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    full_env |= {"GATEWAY_PORT": str(port), "WORKER_ID": worker_id, "PYTHONUNBUFFERED": "1"} | env
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway_sync.worker"], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    return WorkerProcess(worker_id, port, process, log_path)


def _wait_listening(worker: WorkerProcess, client: httpx.Client, *, timeout: float = 20.0) -> bool:
    """True once /healthz answers; False if the process exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            return False
        with contextlib.suppress(httpx.TransportError):
            if client.get(f"{worker.url}/healthz").status_code == 200:
                return True
        time.sleep(0.05)
    raise AssertionError(f"worker {worker.worker_id} did not listen in time:\n{worker.log()}")


def start_worker(worker_id: str, env: dict[str, str], log_dir: Path, client: httpx.Client) -> WorkerProcess:
    for _attempt in range(3):
        worker = _spawn(worker_id, env, log_dir)
        if _wait_listening(worker, client):
            return worker
        # Another process took the free port between our probe and the worker's bind.
        if "address already in use" not in worker.log().lower():
            raise AssertionError(f"worker {worker_id} exited:\n{worker.log()}")
    raise AssertionError(f"worker {worker_id} found no free port")


@contextlib.contextmanager
def running_workers(
    count: int, env: dict[str, str], log_dir: Path, client: httpx.Client, *, prefix: str = "worker"
) -> Iterator[list[WorkerProcess]]:
    workers: list[WorkerProcess] = []
    try:
        for number in range(count):
            workers.append(start_worker(f"{prefix}-{number}", env, log_dir, client))
        yield workers
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop()


def wait_for_version(
    workers: list[WorkerProcess], client: httpx.Client, version: int, *, timeout: float = 10.0
) -> float:
    """Seconds until every worker's /readyz reports ``version``."""
    started = time.perf_counter()
    waiting = list(workers)
    while waiting:
        waiting = [w for w in waiting if w.readyz(client)[1].get("snapshot_version") != version]
        if time.perf_counter() - started > timeout:
            logs = "\n".join(w.log() for w in waiting)
            raise AssertionError(f"{[w.worker_id for w in waiting]} never reported snapshot {version}:\n{logs}")
        if waiting:
            time.sleep(0.002)
    return time.perf_counter() - started


def start_supervisor(
    worker_id: str, env: dict[str, str], log_dir: Path, client: httpx.Client, *, workers: int = 2
) -> WorkerProcess:
    """``python -m gateway_sync.worker`` with ``GATEWAY_WORKERS=workers``, listening."""
    return start_worker(worker_id, {"GATEWAY_WORKERS": str(workers)} | env, log_dir, client)


def child_pids(supervisor: WorkerProcess) -> dict[str, list[int]]:
    """Each child's worker id and the pids it ran as, in order, from the supervisor's log
    (``worker <id> started (pid <pid>)``)."""
    pids: dict[str, list[int]] = {}
    for line in supervisor.log().splitlines():
        if "gateway_sync.worker.processes: worker " in line and " started (pid " in line:
            worker_id = line.split(": worker ", 1)[1].split(" ", 1)[0]
            pids.setdefault(worker_id, []).append(int(line.rsplit("(pid ", 1)[1].rstrip(")")))
    return pids


def port_is_free(port: int) -> bool:
    """True if a server could listen on 127.0.0.1:``port`` now (as aiohttp binds: with
    SO_REUSEADDR, so connections left in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def fresh_get(url: str, *, timeout: float = 5.0) -> httpx.Response:
    """GET on a new connection, so the kernel picks which process on the port answers."""
    with httpx.Client(timeout=timeout) as client:
        response = client.get(url)
        response.read()
        return response


def wait_for_children(supervisor: WorkerProcess, worker_ids: set[str], *, timeout: float = 20.0) -> None:
    """Until fresh connections to the port reach every child in ``worker_ids``, ready."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while not worker_ids <= seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {sorted(seen)} answered /readyz as ready:\n{supervisor.log()}")
        with contextlib.suppress(httpx.TransportError):
            response = fresh_get(f"{supervisor.url}/readyz")
            if response.status_code == 200:
                seen.add(response.json()["worker_id"])
        time.sleep(0.01)
