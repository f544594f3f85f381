"""Celery against real Redis: a worker consumes tasks and beat starts.

The worker and beat run as real processes, the way the Procfile starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

pytestmark = pytest.mark.slow


def _celery_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PLATFORM_VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
    }


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_a_worker_consumes_tasks_from_redis(tmp_path):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-c", "1", "-P", "solo",
         "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT, env=_celery_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    client = Celery("test-client", broker=REDIS_URL, backend=REDIS_URL)
    try:
        result = client.send_task("accounts.tasks.health_ping_task", queue=queue)
        assert result.get(timeout=60) == "pong"
    finally:
        output = _stop(worker)
        client.close()
    assert "accounts.tasks.health_ping_task" in output, output


def test_beat_starts_against_redis(tmp_path):
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "beat-schedule"), "--max-interval", "1"],
        cwd=ROOT, env=_celery_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    time.sleep(4)
    alive = beat.poll() is None
    output = _stop(beat)
    assert alive, output
    assert "beat: Starting..." in output
    assert REDIS_URL.rsplit("/", 1)[0].replace("redis://", "") in output, "beat talks to the Redis broker"
