"""The worker imports no Django: checked in a fresh interpreter, since this test process
has Django loaded already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_worker_imports_no_django():
    modules = (
        "gateway_sync.worker.app, gateway_sync.worker.loader, gateway_sync.worker.__main__, gateway_sync.worker.guard"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import {modules}, sys; print('django' in sys.modules)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "False", result.stderr
