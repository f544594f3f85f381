"""The worker's long-running background tasks, none of them fire-and-forget.

``BackgroundTasks`` keeps a reference to every task it starts (so none is garbage-collected
mid-flight), logs a crash with its traceback, reports it, and restarts the task after a
growing delay: a bug in the loader must not leave a worker silently frozen on an old
snapshot. ``stop()`` cancels every task and waits for each to finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

CrashHandler = Callable[[str, Exception], None]


class BackgroundTasks:
    def __init__(self, *, on_crash: CrashHandler | None = None, restart_delay_s: tuple[float, float] = (1.0, 30.0)):
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_crash = on_crash
        self._restart_delay_s = restart_delay_s

    @property
    def names(self) -> list[str]:
        return [name for name, task in self._tasks.items() if not task.done()]

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run()`` in a task named ``name``, restarting it whenever it crashes."""
        if name in self._tasks and not self._tasks[name].done():
            raise RuntimeError(f"a background task named {name!r} is already running")
        self._tasks[name] = asyncio.create_task(self._supervise(name, run), name=name)

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        delay, longest = self._restart_delay_s
        while True:
            try:
                await run()
            except Exception as exc:
                log.exception("background task %s crashed; restarting it in %.1f s", name, delay)
                if self._on_crash is not None:
                    self._on_crash(name, exc)
            else:
                log.info("background task %s finished", name)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)

    async def stop(self) -> None:
        """Cancel every task and wait until each has finished."""
        tasks = list(self._tasks.items())
        self._tasks.clear()
        for _name, task in tasks:
            task.cancel()
        results = await asyncio.gather(*(task for _name, task in tasks), return_exceptions=True)
        for (name, _task), result in zip(tasks, results, strict=True):
            if isinstance(result, Exception):
                log.error("background task %s failed while stopping: %r", name, result)
