"""Background tasks are never fire-and-forget: a crash is seen and the task restarted, and
stopping waits for every task."""

from __future__ import annotations

import asyncio

import pytest

from gateway_sync.worker.supervisor import BackgroundTasks

pytestmark = pytest.mark.anyio


async def test_a_crashed_task_is_reported_and_restarted(caplog):
    crashes: list[str] = []
    runs = 0
    forever = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"crash {runs}")
        await forever.wait()

    tasks = BackgroundTasks(on_crash=lambda name, exc: crashes.append(f"{name}: {exc}"), restart_delay_s=(0.01, 0.02))
    tasks.start("flaky", flaky)
    for _ in range(200):
        if runs == 3:
            break
        await asyncio.sleep(0.01)
    assert runs == 3
    assert crashes == ["flaky: crash 1", "flaky: crash 2"]
    assert sum("background task flaky crashed" in r.getMessage() for r in caplog.records) == 2
    assert tasks.names == ["flaky"]
    await tasks.stop()
    assert tasks.names == []


async def test_stop_cancels_and_waits_for_every_task():
    cleaned: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)
            cleaned.append(name)

    tasks = BackgroundTasks()
    tasks.start("a", lambda: worker("a"))
    tasks.start("b", lambda: worker("b"))
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="already running"):
        tasks.start("a", lambda: worker("a"))
    await tasks.stop()
    assert sorted(cleaned) == ["a", "b"]
