"""``GATEWAY_WORKERS=N``: a small supervisor running N worker processes on one port.

Each child is a fresh ``python -m gateway_sync.worker`` (started with ``subprocess``, so
nothing is forked from a process with an event loop), with ``WORKER_ID=<worker_id>-<n>``
(distinct heartbeats) and ``GATEWAY_SUPERVISOR_PID`` set, which makes it bind its port
with SO_REUSEPORT: the kernel spreads new connections over the children.

The supervisor:

1. refuses embedded mode (no ``REDIS_URL``) with N != 1 (exit 2): the in-memory rate
   limiter would then hold per process, admitting up to N times a quota;
2. checks that the port can be bound before starting anyone (exit 1 if not);
3. restarts a child that dies unexpectedly, after 0.5 s, 1 s, 2 s ... 30 s; a child that
   ran for a minute starts again from 0.5 s. When children keep failing within seconds
   of their start (``MAX_START_FAILURES`` in a row), it gives up: it stops the others
   and exits 1;
4. forwards SIGTERM and SIGINT to every child (each drains, serve.py) and waits for them:
   exit 0 when all stopped cleanly, else 1. A second signal is forwarded too (children
   then cancel their requests in flight).

Children run in their own process group, so a terminal's Ctrl-C reaches only the
supervisor (which forwards it once), and die with it (Linux PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from gateway_sync.worker.settings import WorkerSettings

# Set in a child's environment: the pid of its supervisor.
SUPERVISOR_PID_ENV = "GATEWAY_SUPERVISOR_PID"
# A child that exits within this many seconds of its start failed "at start".
START_GRACE_S = 10.0
MAX_START_FAILURES = 4
# A child that ran this long gets its restart delay reset.
STABLE_AFTER_S = 60.0
FIRST_RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 30.0
# After the children were told to stop: their drain, plus this, before SIGKILL.
STOP_MARGIN_S = 10.0
POLL_S = 0.05

log = logging.getLogger(__name__)


class EmbeddedMultiprocessError(ValueError):
    """GATEWAY_WORKERS != 1 without REDIS_URL."""


def process_count(settings: WorkerSettings) -> int:
    """How many processes serve: GATEWAY_WORKERS, or one per core for 0 ("auto")."""
    return settings.workers or os.cpu_count() or 1


def check_can_supervise(settings: WorkerSettings) -> None:
    """Raise EmbeddedMultiprocessError when several processes cannot share the settings."""
    if settings.embedded and settings.workers != 1:
        asked = "auto" if settings.workers == 0 else str(settings.workers)
        raise EmbeddedMultiprocessError(
            f"GATEWAY_WORKERS={asked} needs REDIS_URL: in embedded mode each process would keep its own "
            "in-memory rate limits, so quotas could not be exact across processes. "
            "Set REDIS_URL, or run one process (GATEWAY_WORKERS=1)."
        )


def port_available(host: str, port: int) -> OSError | None:
    """None if a SO_REUSEPORT socket can bind ``host:port`` now; else the bind error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def shared_metrics_dir(supervisor_pid: int) -> Path:
    """Where the children of supervisor ``supervisor_pid`` share their metrics (metrics.py)."""
    return Path(tempfile.gettempdir()) / f"gateway-metrics-{supervisor_pid}"


def die_with_supervisor() -> None:
    """In a child: get SIGTERM when the supervisor dies (Linux), and stop at once if it
    already has, so no orphan keeps the port."""
    supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if supervisor.isdigit() and os.getppid() != int(supervisor):
        raise SystemExit(f"gateway worker: supervisor {supervisor} is gone")


@dataclass
class Child:
    number: int
    worker_id: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    # Consecutive exits soon after a start; sets the restart delay.
    failures: int = 0
    restart_at: float | None = None
    exit_codes: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(self, settings: WorkerSettings, count: int, *, command: Sequence[str] = ()) -> None:
        self.settings = settings
        # What a child runs (tests replace it); by default a worker.
        self.command = list(command) or [sys.executable, "-m", "gateway_sync.worker"]
        self.children = [Child(number, f"{settings.worker_id}-{number}") for number in range(count)]
        self.signals: list[signal.Signals] = []

    def run(self) -> int:
        """Start the children, keep them running until a signal; the exit code."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
        # The children's metrics files: fresh for this run (a reused pid's left-overs go).
        metrics_dir = shared_metrics_dir(os.getpid())
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(mode=0o700)
        try:
            for child in self.children:
                self._start(child)
            code = self._watch()
            return self._stop_all(code)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signal.Signals(signum))

    def _start(self, child: Child) -> None:
        env = dict(os.environ)
        env |= {"WORKER_ID": child.worker_id, "GATEWAY_WORKERS": "1", SUPERVISOR_PID_ENV: str(os.getpid())}
        child.process = subprocess.Popen(self.command, env=env, process_group=0)  # noqa: S603 (our own interpreter)
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("worker %s started (pid %d)", child.worker_id, child.process.pid)

    def _watch(self) -> int:
        """Until a signal (0) or giving up on a crash loop (1)."""
        while not self.signals:
            now = time.monotonic()
            for child in self.children:
                if child.process is not None and (code := child.process.poll()) is not None:
                    if not self._schedule_restart(child, code, now):
                        return 1
                elif child.process is None and child.restart_at is not None and now >= child.restart_at:
                    self._start(child)
            time.sleep(POLL_S)
        return 0

    def _schedule_restart(self, child: Child, code: int, now: float) -> bool:
        """False when the child keeps failing at start: time to give up."""
        pid = child.process.pid if child.process is not None else 0
        ran_s = now - child.started_at
        child.process = None
        child.exit_codes.append(code)
        if ran_s >= STABLE_AFTER_S:
            child.failures = 0
        child.failures += 1
        if ran_s < START_GRACE_S and child.failures >= MAX_START_FAILURES:
            log.error(
                "worker %s (pid %d) exited with code %d after %.1f s, the %d time in a row soon after its start: "
                "giving up (see its log above; is port %d taken, or a setting wrong?)",
                child.worker_id, pid, code, ran_s, child.failures, self.settings.port,
            )  # fmt: skip
            return False
        delay = min(FIRST_RESTART_DELAY_S * 2 ** (child.failures - 1), MAX_RESTART_DELAY_S)
        child.restart_at = now + delay
        log.error(
            "worker %s (pid %d) exited unexpectedly with code %d after %.1f s: restarting in %.1f s",
            child.worker_id, pid, code, ran_s, delay,
        )  # fmt: skip
        return True

    def _stop_all(self, code: int) -> int:
        """Signal every child, wait for them (SIGKILL after the drain time); the exit code."""
        forwarded = 0
        deadline = time.monotonic() + self.settings.shutdown_timeout_s + STOP_MARGIN_S
        running = {child.worker_id: child.process for child in self.children if child.process is not None}
        if self.signals:
            log.info("%s: stopping %d workers", self.signals[0].name, len(running))
        while running:
            while forwarded < max(len(self.signals), 1):
                signum = self.signals[forwarded] if self.signals else signal.SIGTERM
                for process in running.values():
                    process.send_signal(signum)
                forwarded += 1
            if time.monotonic() > deadline:
                for worker_id, process in running.items():
                    log.error("worker %s (pid %d) did not stop: killed", worker_id, process.pid)
                    process.kill()
                    process.wait()
                return 1
            for worker_id, process in list(running.items()):
                exit_code = process.poll()
                if exit_code is None:
                    continue
                del running[worker_id]
                log.info("worker %s (pid %d) exited with code %d", worker_id, process.pid, exit_code)
                if exit_code != 0:
                    code = 1
            time.sleep(POLL_S)
        return code


def supervise(settings: WorkerSettings) -> int:
    """Run ``process_count(settings)`` workers on the settings' port; the exit code.
    The caller has checked ``check_can_supervise``."""
    count = process_count(settings)
    failure = port_available(settings.host, settings.port)
    if failure is not None:
        reason = "address already in use" if failure.errno == errno.EADDRINUSE else str(failure)
        log.error("cannot listen on %s:%d: %s; no worker started", settings.host, settings.port, reason)
        return 1
    log.info(
        "supervisor (pid %d): %d workers on http://%s:%d (SO_REUSEPORT)",
        os.getpid(),
        count,
        settings.host,
        settings.port,
    )
    return Supervisor(settings, count).run()
