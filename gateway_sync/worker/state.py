"""The snapshot a worker serves, and the one reference through which requests reach it.

- ``CompiledSnapshot`` is a decoded, validated Snapshot plus the lookup indexes the request
  path needs, all O(1). It is built once, off the request path (in a thread, by the loader),
  and never changed afterwards: every request may share it without a lock.
- ``SnapshotHolder`` holds the current CompiledSnapshot in a single attribute, and the
  record of what happened to the snapshots it was offered (for /readyz and heartbeats).

How a request uses it: it calls ``holder.current()`` **once**, when it starts, and keeps
that object for its whole life (the worker's middleware pins it on the request). A swap
while it runs changes nothing for it: it still holds a reference to the old snapshot, which
stays alive until the last such request finishes. This is what lets a swap drop no request,
SSE streams included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from gateway_sync.contract.schema import App, GuardrailPolicy, Key, Plan, Product, Route, Snapshot, Subscription


@dataclass(frozen=True, eq=False, slots=True)
class CompiledSnapshot:
    snapshot: Snapshot
    sha256: str
    keys_by_hash: Mapping[str, Key]
    apps_by_id: Mapping[int, App]
    products_by_slug: Mapping[str, Product]
    products_by_id: Mapping[int, Product]
    # Keyed by (app id, product id).
    subscriptions: Mapping[tuple[int, int], Subscription]
    plans_by_id: Mapping[int, Plan]
    # Per product id, highest priority first (ties: lowest route id first). Products without
    # a route are absent.
    routes_by_product: Mapping[int, tuple[Route, ...]]
    guardrails_by_id: Mapping[int, GuardrailPolicy]

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def source_generation(self) -> int:
        return self.snapshot.source_generation

    @classmethod
    def build(cls, snapshot: Snapshot, *, sha256: str) -> CompiledSnapshot:
        """Index a snapshot that ``codec.decode_snapshot`` has validated (so identities are
        unique and references resolve). CPU-bound: for a large snapshot, call it in a thread."""
        routes: dict[int, list[Route]] = {}
        for route in snapshot.routes:
            routes.setdefault(route.product_id, []).append(route)
        subscriptions: dict[tuple[int, int], Subscription] = {}
        for sub in snapshot.subscriptions:
            # The portal approves one subscription per app and product; should two arrive,
            # the one that lasts longer wins, so a stale row never cuts access short.
            key = (sub.app_id, sub.product_id)
            kept = subscriptions.get(key)
            if kept is None or _lasts_longer(sub, kept):
                subscriptions[key] = sub
        return cls(
            snapshot=snapshot,
            sha256=sha256,
            keys_by_hash={key.hash: key for key in snapshot.keys},
            apps_by_id={app.id: app for app in snapshot.apps},
            products_by_slug={product.slug: product for product in snapshot.products},
            products_by_id={product.id: product for product in snapshot.products},
            subscriptions=subscriptions,
            plans_by_id={plan.id: plan for plan in snapshot.plans},
            routes_by_product={
                product_id: tuple(sorted(found, key=lambda r: (-r.priority, r.id)))
                for product_id, found in routes.items()
            },
            guardrails_by_id={policy.id: policy for policy in snapshot.guardrails},
        )


def _lasts_longer(candidate: Subscription, kept: Subscription) -> bool:
    if kept.expires_at is None:
        return False
    return candidate.expires_at is None or candidate.expires_at > kept.expires_at


@dataclass
class SnapshotCounters:
    applied: int = 0
    refused: int = 0
    # Failures to read the pointer or the payload (I/O, Redis): retried, nothing refused.
    source_errors: int = 0
    last_refused_version: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


class SnapshotHolder:
    """The current snapshot, behind one attribute, and what became of the others.

    ``swap`` needs no lock: it runs on the event loop's thread, contains no ``await``, and
    replaces the snapshot with one attribute assignment (a single bytecode in CPython). So
    no coroutine can run between the old reference and the new one, and ``current()``
    returns either the whole old snapshot or the whole new one. The expensive part (decoding
    and indexing) has already happened, in a thread, on an object nobody else can see yet.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._current: CompiledSnapshot | None = None
        self._clock = clock
        self.applied_at: float | None = None
        # Seconds from the announcement (the pointer's write, or the message) to the swap.
        self.lag_s: float | None = None
        # The problem the latest check met, "" once a check succeeds again. A refused
        # snapshot stays reported while it is the latest one announced.
        self.last_error = ""
        self.last_error_at: float | None = None
        self.counters = SnapshotCounters()
        # Set on every apply, refusal or new error; the heartbeat wakes on it.
        self.changed = asyncio.Event()

    def current(self) -> CompiledSnapshot | None:
        """The snapshot to serve with, or None before the first one is applied. Take it once
        per request and keep it (see the module docstring)."""
        return self._current

    @property
    def version(self) -> int | None:
        current = self._current
        return None if current is None else current.version

    def swap(self, new: CompiledSnapshot, *, announced_at: float | None = None) -> None:
        """Serve ``new`` from now on; requests already holding the old one keep it."""
        self._current = new
        now = self._clock()
        self.applied_at = now
        self.lag_s = None if announced_at is None else max(0.0, now - announced_at)
        self.counters.applied += 1
        self.last_error = ""
        self.last_error_at = None
        self.changed.set()

    def refuse(self, version: int | None, error: str) -> None:
        """Record a snapshot that failed validation; the current one stays."""
        self.counters.refused += 1
        self.counters.last_refused_version = version
        self.report_error(error)

    def source_failed(self, error: str) -> None:
        """Record a failure to read from the snapshot source; the current snapshot stays."""
        self.counters.source_errors += 1
        self.report_error(error)

    def check_succeeded(self, *, standing_error: str = "") -> None:
        """A check read the source without trouble. Nothing is wrong any more, except
        ``standing_error``: the refusal of the snapshot that is still the latest one."""
        if self.last_error != standing_error:
            self.last_error = standing_error
            self.last_error_at = self._clock() if standing_error else None
            self.changed.set()

    def report_error(self, error: str) -> None:
        """Record a problem (shown by /readyz and the heartbeat until a check succeeds)."""
        if error != self.last_error:
            self.changed.set()
        self.last_error = error
        self.last_error_at = self._clock()
