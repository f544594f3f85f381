"""Per-target cooldown, in process (each worker keeps its own): a target that failed
``Cooldown.failures`` times (5xx, 429, timeouts, connection errors) within ``window_s``
seconds is skipped for ``cooldown_s`` seconds. Pure bookkeeping with an injectable clock."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from gateway_sync.contract.schema import Cooldown


class CooldownTracker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[int, deque[float]] = {}
        self._until: dict[int, float] = {}

    def record_failure(self, target_id: int, policy: Cooldown) -> None:
        now = self.clock()
        if policy.failures <= 0:
            return
        seen = self._failures.setdefault(target_id, deque())
        seen.append(now)
        while seen and seen[0] <= now - policy.window_s:
            seen.popleft()
        if len(seen) >= policy.failures:
            self._until[target_id] = now + policy.cooldown_s
            seen.clear()

    def cooling(self, target_id: int) -> bool:
        until = self._until.get(target_id)
        if until is None:
            return False
        if self.clock() >= until:
            del self._until[target_id]
            return False
        return True
