"""`make run` on embedded defaults: it migrates, seeds, serves the login page, and the
whole supervised group stops on Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback URL built here)
            return int(response.status)
    except OSError:
        return 0


def _wait_for(url: str, process: subprocess.Popen[str], *, deadline: float) -> None:
    while _get(url) != 200:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"{url} did not answer in time"
        time.sleep(0.5)


def _usage_rows(database: Path, path: str) -> list[tuple[int, str]]:
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as connection:
        return connection.execute(
            "SELECT status, product_slug FROM consumers_usageevent WHERE path = ?", (path,)
        ).fetchall()


def test_make_run_serves_the_login_page_and_stops_cleanly_on_ctrl_c(tmp_path):
    port, echo_port, llm_port, tools_port, gateway_port = (_free_port() for _ in range(5))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env |= {
        "PLATFORM_VAR_DIR": str(tmp_path / "var"),
        "PORTAL_PORT": str(port),
        "PORTAL_URL": f"http://127.0.0.1:{port}",
        "DEMO_ECHO_PORT": str(echo_port),
        "DEMO_LLM_PORT": str(llm_port),
        "DEMO_TOOLS_PORT": str(tools_port),
        "GATEWAY_PORT": str(gateway_port),
    }
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/accounts/login/"
    try:
        _wait_for(url, process, deadline=time.monotonic() + 180)
        assert (tmp_path / "var" / "platform.sqlite3").exists()
        credentials = (tmp_path / "var" / "demo-credentials.txt").read_text()
        assert "admin@demo.local" in credentials
        for product in ("demo-echo", "demo-llm", "demo-tools"):
            assert _get(f"http://127.0.0.1:{port}/catalog/{product}/") == 200, f"{product} is published"
        for upstream in (f"{echo_port}/healthz", f"{llm_port}/v1/models", f"{tools_port}/healthz"):
            _wait_for(f"http://127.0.0.1:{upstream}", process, deadline=time.monotonic() + 60)
        # The gateway worker is ready once it has loaded the snapshot the seed published.
        _wait_for(f"http://127.0.0.1:{gateway_port}/readyz", process, deadline=time.monotonic() + 60)
        with urllib.request.urlopen(f"http://127.0.0.1:{gateway_port}/readyz", timeout=2) as response:
            assert json.loads(response.read())["snapshot_version"] >= 1
        # The demo key reaches the echo upstream through the gateway, and the request's usage
        # event travels worker → spool folder → `usage_ingest --follow` → the database.
        key = re.search(r"^api-key\s+\S+\s+(\S+)$", credentials, re.MULTILINE)
        assert key, credentials
        request = urllib.request.Request(
            f"http://127.0.0.1:{gateway_port}/api/demo-echo/anything/make-run-check",
            headers={"Authorization": f"Bearer {key[1]}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback URL built here)
            assert response.status == 200
        # The demo MCP server through the gateway's /mcp/{server}, with the same key.
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "make-run-check", "version": "1"},
            },
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{gateway_port}/mcp/demo-tools",
            data=json.dumps(initialize).encode(),
            headers={
                "Authorization": f"Bearer {key[1]}",
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback URL built here)
            assert response.status == 200
            assert response.headers["Mcp-Session-Id"]
            answer = response.read().decode()
        assert '"serverInfo"' in answer, answer
        deadline = time.monotonic() + 30
        while not _usage_rows(tmp_path / "var" / "platform.sqlite3", "/api/demo-echo/anything/make-run-check"):
            assert time.monotonic() < deadline, "the usage event never reached the database"
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            pytest.fail(f"make run did not stop within 30 s of Ctrl-C:\n{output}")
    assert _get(url) == 0, "nothing still listens after Ctrl-C"
    assert "admin@demo.local" in output, "the demo logins are printed on the first start"
