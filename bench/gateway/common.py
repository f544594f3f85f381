"""What every gateway benchmark needs: ports, process groups, their CPU time, readiness, machine facts."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
LITELLM_VENV = CACHE / "litellm-venv"
BENCH_VENV = CACHE / "bench-venv"
PORTKEY_DIR = CACHE / "portkey"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SPINNER = tuple("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")


class SetupUnavailable(Exception):
    """A set-up that cannot be installed or started here; the reason is recorded, never a number."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A server started in its own process group, so that stopping it stops only what it started."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        environ = {**os.environ, **(self.env or {})}
        self.process = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        """The log's last lines, without terminal colours and spinners, on one line."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        text = ANSI_ESCAPE.sub("", text).replace("\r", "\n")
        kept = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith(SPINNER)]
        return " | ".join(kept[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the group, then SIGKILL to whatever is left after ``timeout``."""
        if self.process is None:
            return
        pgid = self.process.pid
        # Some servers put their workers in groups of their own: remember them to clean up after.
        members = self.tree()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        # Children (workers) may outlive their parent briefly.
        deadline = time.monotonic() + timeout
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        for pid in members:
            if pid != pgid and _stat_fields(pid) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def tree(self) -> list[int]:
        return process_tree(self.process.pid) if self.process is not None else []


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its living descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds of each living pid."""
    result = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # After the name: state is index 0, utime index 11, stime index 12 (fields 14 and 15).
            result[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return result


def cpu_used(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds spent between two readings (a process born meanwhile counts from zero)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def http_status(
    url: str, *, method: str = "GET", body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> int | None:
    """The status of one request, or None when nothing answered."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (bench URLs are ours)
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, TimeoutError):
        return None


def wait_until(check: str, predicate: Callable[[], bool], *, timeout: float, service: Service | None = None) -> None:
    """Call ``predicate()`` until it is true; SetupUnavailable after ``timeout`` or if ``service`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and not service.running():
            raise SetupUnavailable(f"{service.name} exited while {check}: {service.log_tail()}")
        if predicate():
            return
        time.sleep(0.25)
    tail = service.log_tail() if service is not None else ""
    raise SetupUnavailable(f"{check}: not done after {timeout:.0f} s. {tail}")


def command_output(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        return ""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


def machine_info() -> dict[str, object]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with contextlib.suppress(OSError, ValueError):
        memory_kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


@dataclass(frozen=True)
class CpuSpan:
    # CPU seconds of the services' process trees; None when there were no services.
    services_s: float | None
    # CPU seconds of the extra process (Redis, say); None when there was none.
    extra_s: float | None
    # Processes born into the trees meanwhile (a restarted worker, say).
    born: int


class CpuMeter:
    """CPU seconds spent by some services' process trees, and one extra process, from now to ``stop()``."""

    def __init__(self, services: Sequence[Service], extra_pid: int | None = None) -> None:
        self.services = list(services)
        self.extra_pid = extra_pid
        self.pids = [pid for service in self.services for pid in service.tree()]
        self.before = cpu_seconds(self.pids + ([extra_pid] if extra_pid else []))

    def stop(self) -> CpuSpan:
        pids_after = [pid for service in self.services for pid in service.tree()]
        after = cpu_seconds(pids_after + ([self.extra_pid] if self.extra_pid else []))
        extra = self.extra_pid
        services_s = None
        if self.services:
            mine_after = {pid: value for pid, value in after.items() if pid != extra}
            mine_before = {pid: value for pid, value in self.before.items() if pid != extra}
            services_s = round(cpu_used(mine_before, mine_after), 2)
        extra_s = round(after.get(extra, 0.0) - self.before.get(extra, 0.0), 2) if extra else None
        return CpuSpan(services_s, extra_s, len(set(pids_after) - set(self.pids)))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
