"""The demo upstreams as the embedded platform runs them: ``python -m demo_upstreams.<name>``
in a process of its own, with no Django anywhere."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["demo_upstreams.echo", "demo_upstreams.mock_llm", "demo_upstreams.demo_mcp"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _without_django(environ: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key != "DJANGO_SETTINGS_MODULE"}


def test_no_module_of_the_package_imports_django() -> None:
    modules = [*MODULES, "demo_upstreams.mock_llm.__main__", "demo_upstreams.demo_mcp.__main__"]
    code = f"import sys, {', '.join(modules)}, demo_upstreams.inprocess; print('django' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_without_django(dict(os.environ)), capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
def test_each_server_runs_from_the_command_line_and_stops_on_sigterm(module: str) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"],
        cwd=ROOT,
        env=_without_django(dict(os.environ)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer in time"
                time.sleep(0.1)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            pytest.fail(f"{module} did not stop within 20 s of SIGTERM:\n{output}")
    # uvicorn re-raises the signal once it has shut down cleanly; aiohttp exits with 0.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output


@pytest.mark.slow
def test_the_mcp_server_accepts_an_extra_host_from_the_command_line() -> None:
    port = _free_port()
    command = ["-m", "demo_upstreams.demo_mcp", "--port", str(port), "--allowed-host", "tools.internal:80"]
    process = subprocess.Popen(
        [sys.executable, *command, "--log-level", "WARNING"],
        cwd=ROOT,
        env=_without_django(dict(os.environ)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/mcp"
        extra = httpx.post(url, json=initialize, headers={**headers, "Host": "tools.internal:80"})
        other = httpx.post(url, json=initialize, headers={**headers, "Host": "tools.internal:81"})
    finally:
        process.terminate()
        process.wait(timeout=20)

    assert extra.status_code == 200
    assert other.status_code == 421
