"""Prometheus metrics for one worker process, kept by hand and served at ``GET /metrics``.

``Metrics`` is a ``RequestObserver`` (record.py): ``observe(record)`` runs on the request
path after the last byte, so it is a handful of dict operations and a ``bisect``, with no
lock (everything runs on the event loop's thread). Measured with ``timeit`` on a 2-core VM,
Python 3.11: 1.2 µs per ``observe`` for label sets already seen (the common case), about
15 µs the first time a label set appears (its label text is built once, then), and 6 µs for
one folded into "other" past the cap. ``render()`` does the formatting at scrape time.

Cardinality is bounded:

- labels come only from the snapshot's configuration (the product's slug, the route's id)
  or from fixed sets (protocol, status class, limiter decision, upstream error kind), never
  from the request's path or headers. A request whose product was not found in the
  snapshot (``product_id`` is None) has ``product=""``; one that matched no route (it used
  the product's own upstream, or never got that far) has ``route=""``;
- each family keeps at most ``max_series`` label sets (2,000 by default). A new label set
  beyond that is folded into ``product="other", route="other"`` (its other labels kept) and
  the observation is counted in ``gateway_metrics_label_overflow_total{metric}``.

Under a supervisor (processes.py: several processes on one port, where a scrape reaches
whichever process accepts the connection), the processes share their numbers through files
(metrics_shared.py, which also serves ``/metrics``).
``SharedMetrics`` writes this process's raw state (``ProcessState``: counter values,
histogram bucket counts and sums per label set, the snapshot gauges, its pid) to
``<gettempdir()>/gateway-metrics-<supervisor pid>/<worker id>.<pid>.json`` every
``WRITE_INTERVAL_S`` (when it changed), on every scrape it answers, and once at shutdown,
atomically (temporary file, then rename). The process answering ``/metrics`` merges every
file of the folder with its own live state (``merge_states``):

- counters and histograms are summed over every file, those of processes that have exited
  included (a child replaced after a crash writes a new file, under its new pid), so the
  totals never go backwards while the supervisor runs;
- the snapshot gauges come from live processes only (pid alive and file written in the last
  ``FRESH_S``): ``gateway_snapshot_ready`` is 1 only if every live process has a snapshot,
  ``gateway_snapshot_version`` and ``..._applied_timestamp_seconds`` are the oldest among
  them; ``gateway_worker_processes`` counts them;
- the label-set cap holds after merging: states are merged in a fixed order (oldest process
  first), so every process folds the same label sets into "other";
- a file that cannot be read or decoded is skipped (logged once), never a 500.

The supervisor creates the folder at its start and removes it when it exits. A lone process
(no ``GATEWAY_SUPERVISOR_PID``) writes no file and starts no task.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import time
from collections.abc import Iterable

import msgspec

from gateway_sync.worker.metrics_text import OTHER, Counter, Histogram, Key, simple_metric
from gateway_sync.worker.record import (
    LIMIT_ALLOWED,
    LIMIT_DEGRADED_CLOSED,
    LIMIT_DEGRADED_OPEN,
    LIMIT_LIMITED,
    LIMIT_UNLIMITED,
    UPSTREAM_BROKEN,
    UPSTREAM_TIMEOUT,
    UPSTREAM_UNREACHABLE,
    RequestRecord,
)
from gateway_sync.worker.state import SnapshotHolder

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_MAX_SERIES = 2_000
DURATION_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LIMIT_DECISIONS = (LIMIT_ALLOWED, LIMIT_UNLIMITED, LIMIT_LIMITED, LIMIT_DEGRADED_OPEN, LIMIT_DEGRADED_CLOSED)
# Indexed by status // 100; a status of 0 (no answer was sent) or out of range is "unknown".
STATUS_CLASSES = ("unknown", "1xx", "2xx", "3xx", "4xx", "5xx")
UPSTREAM_STATUS_5XX = "status_5xx"
UPSTREAM_ERRORS = frozenset((UPSTREAM_TIMEOUT, UPSTREAM_UNREACHABLE, UPSTREAM_BROKEN))

# Under a supervisor: how often a process writes its state for the others, and how recently
# a process must have written to count as live (its snapshot gauges are then included).
WRITE_INTERVAL_S = 1.0
FRESH_S = 10.0

log = logging.getLogger(__name__)

# When this module was imported: at the worker's start, since __main__ imports it.
PROCESS_START = time.time()


@functools.cache
def _build_version() -> str:
    try:
        return importlib.metadata.version("ai-open-platform")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """The worker's metrics: a ``RequestObserver`` and the text ``/metrics`` serves."""

    def __init__(self, holder: SnapshotHolder | None = None, *, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.holder = holder
        self.max_series = max_series
        self.overflow: dict[str, int] = {}
        fold = self._count_fold
        route_labels = ("protocol", "product", "route")
        self.requests = Counter(
            "gateway_requests_total",
            "Finished proxied requests, by status class.",
            (*route_labels, "status_class"),
            max_series=max_series,
            overflow=fold,
        )
        self.request_duration = Histogram(
            "gateway_request_duration_seconds",
            "Seconds from a request's arrival to its last byte sent.",
            route_labels,
            bounds=DURATION_BOUNDS,
            max_series=max_series,
            overflow=fold,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_duration_seconds",
            "Seconds from a request's arrival to the upstream's response headers, when they came.",
            route_labels,
            bounds=DURATION_BOUNDS,
            max_series=max_series,
            overflow=fold,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Requests whose upstream failed: timeout, unreachable, broken_stream, or status_5xx "
            "(the upstream answered 5xx).",
            (*route_labels, "kind"),
            max_series=max_series,
            overflow=fold,
        )
        self.counters = {family.name: family for family in (self.requests, self.upstream_errors)}
        self.histograms = {family.name: family for family in (self.request_duration, self.upstream_duration)}
        self.limiter = dict.fromkeys(LIMIT_DECISIONS, 0)
        self.bytes_in = 0
        self.bytes_out = 0
        self.version = _build_version()

    def _count_fold(self, metric: str) -> None:
        self.overflow[metric] = self.overflow.get(metric, 0) + 1

    def observe(self, record: RequestRecord) -> None:
        """Count a finished request. Never raises on a well-formed record."""
        # The slug counts only once the product was found in the snapshot: an unknown
        # product's slug is whatever the caller typed.
        product = record.product_slug if record.product_id is not None else ""
        route = "" if record.route_id is None else str(record.route_id)
        key = (record.protocol, product, route)
        status = record.status
        status_class = STATUS_CLASSES[status // 100] if 100 <= status < 600 else "unknown"
        self.requests.inc((*key, status_class))
        self.request_duration.observe(key, record.duration_s)
        latency = record.upstream_latency_s
        if latency is not None:
            self.upstream_duration.observe(key, latency)
        error = record.upstream_error
        if error:
            self.upstream_errors.inc((*key, error if error in UPSTREAM_ERRORS else OTHER))
        elif latency is not None and status >= 500:
            # The upstream answered (its headers came) and the final status is a 5xx:
            # the upstream's own, since a gateway-made 502/504 always comes with a kind.
            self.upstream_errors.inc((*key, UPSTREAM_STATUS_5XX))
        decision = record.limit_decision
        if decision in self.limiter:
            self.limiter[decision] += 1
        else:
            self.limiter[OTHER] = self.limiter.get(OTHER, 0) + 1
        self.bytes_in += record.bytes_in
        self.bytes_out += record.bytes_out

    def render(self) -> bytes:
        """The Prometheus text exposition format, version 0.0.4: this process's numbers."""
        holder = self.holder
        return self._render(self.gauges(), None if holder is None else _snapshot_counters(holder), PROCESS_START, 1)

    def gauges(self) -> SnapshotGauges:
        holder = self.holder
        current = None if holder is None else holder.current()
        return SnapshotGauges(
            ready=current is not None,
            version=None if current is None else current.version,
            applied_at=None if holder is None else holder.applied_at,
        )

    def state(self, *, pid: int, worker_id: str, now: float) -> ProcessState:
        """This process's raw numbers, for the processes of its supervisor. It refers to
        the live series (no copy): encode or merge it before the event loop moves on."""
        holder = self.holder
        return ProcessState(
            pid=pid,
            worker_id=worker_id,
            written_at=now,
            started_at=PROCESS_START,
            counters={name: list(family.values.items()) for name, family in self.counters.items()},
            histograms={name: list(family.buckets.items()) for name, family in self.histograms.items()},
            limiter=self.limiter,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            overflow=self.overflow,
            snapshot_counters=(0, 0, 0) if holder is None else _snapshot_counters(holder),
            gauges=self.gauges(),
        )

    def _render(
        self,
        gauges: SnapshotGauges,
        snapshot_counters: tuple[int, int, int] | None,
        started_at: float,
        processes: int,
    ) -> bytes:
        out: list[str] = []
        self.requests.render(out)
        self.request_duration.render(out)
        self.upstream_duration.render(out)
        self.upstream_errors.render(out)
        simple_metric(
            out,
            "gateway_limiter_decisions_total",
            "Rate limiter decisions on finished requests.",
            "counter",
            "decision",
            self.limiter.items(),
        )
        simple_metric(
            out,
            "gateway_request_bytes_total",
            "Body bytes received from clients (in) and sent to them (out).",
            "counter",
            "direction",
            [("in", self.bytes_in), ("out", self.bytes_out)],
        )
        simple_metric(
            out,
            "gateway_metrics_label_overflow_total",
            f"Observations folded into product/route=other because the metric had {self.requests.max_series} "
            "label sets already.",
            "counter",
            "metric",
            self.overflow.items(),
        )
        _render_snapshot(out, gauges, snapshot_counters)
        simple_metric(out, "gateway_build_info", "The worker's version.", "gauge", "version", [(self.version, 1)])
        simple_metric(
            out,
            "gateway_process_start_time_seconds",
            "Unix time the worker started (under a supervisor: the earliest start among the processes counted).",
            "gauge",
            "",
            [("", started_at)],
        )
        simple_metric(
            out,
            "gateway_worker_processes",
            "Live worker processes whose numbers this answer includes (1 without a supervisor).",
            "gauge",
            "",
            [("", processes)],
        )
        return "".join(out).encode()


class SnapshotGauges(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool
    version: int | None
    applied_at: float | None


class ProcessState(msgspec.Struct, kw_only=True):
    """One process's raw numbers, as written to the supervisor's folder."""

    pid: int
    worker_id: str
    written_at: float
    started_at: float
    # Family name -> [(label values, value)].
    counters: dict[str, list[tuple[Key, int | float]]]
    # Family name -> [(label values, [count per bucket (not cumulative; +Inf last), sum])].
    histograms: dict[str, list[tuple[Key, list[float]]]]
    limiter: dict[str, int]
    bytes_in: int
    bytes_out: int
    overflow: dict[str, int]
    # The loader's applied, refused and source_errors counters.
    snapshot_counters: tuple[int, int, int]
    gauges: SnapshotGauges


def _snapshot_counters(holder: SnapshotHolder) -> tuple[int, int, int]:
    counters = holder.counters
    return counters.applied, counters.refused, counters.source_errors


def _render_snapshot(out: list[str], gauges: SnapshotGauges, counters: tuple[int, int, int] | None) -> None:
    simple_metric(
        out, "gateway_snapshot_ready", "1 once a snapshot is applied, else 0.", "gauge", "", [("", int(gauges.ready))]
    )
    version = [] if gauges.version is None else [("", gauges.version)]
    simple_metric(
        out, "gateway_snapshot_version", "Version of the snapshot served (absent before one).", "gauge", "", version
    )
    applied_at = [] if gauges.applied_at is None else [("", gauges.applied_at)]
    simple_metric(
        out,
        "gateway_snapshot_applied_timestamp_seconds",
        "Unix time the current snapshot was applied.",
        "gauge",
        "",
        applied_at,
    )
    if counters is None:
        return
    for name, value, help_text in zip(
        ("applied", "refused", "source_errors"),
        counters,
        (
            "Snapshots applied.",
            "Snapshots refused (checksum, schema, references).",
            "Failures to read the snapshot source.",
        ),
        strict=True,
    ):
        simple_metric(out, f"gateway_snapshot_{name}_total", help_text, "counter", "", [("", value)])


def check_state(state: ProcessState) -> None:
    """Raise ValueError if ``state`` (decoded from a file) does not fit the families."""
    if state.pid <= 0:
        raise ValueError(f"pid {state.pid}")
    families: dict[str, tuple[int, int | None]] = {
        "gateway_requests_total": (4, None),
        "gateway_upstream_errors_total": (4, None),
        "gateway_request_duration_seconds": (3, len(DURATION_BOUNDS) + 2),
        "gateway_upstream_duration_seconds": (3, len(DURATION_BOUNDS) + 2),
    }
    for name, counter_series in state.counters.items():
        for key, _value in counter_series:
            if families.get(name, (len(key), None)) != (len(key), None):
                raise ValueError(f"{name}: labels {key!r}")
    for name, histogram_series in state.histograms.items():
        for key, counts in histogram_series:
            if families.get(name, (len(key), len(counts))) != (len(key), len(counts)):
                raise ValueError(f"{name}: labels {key!r}, {len(counts)} buckets")


def merge_states(states: Iterable[ProcessState], live: Iterable[ProcessState], *, max_series: int) -> bytes:
    """The exposition text for several processes: counters and histograms summed over
    ``states`` (exited processes included), snapshot gauges from ``live`` ones only, the
    label-set cap applied again. States are merged oldest process first, whatever the
    order given, so every process folds the same label sets."""
    merged = Metrics(max_series=max_series)
    overflow = merged.overflow
    snapshot = (0, 0, 0)
    ordered = sorted(states, key=lambda state: (state.started_at, state.worker_id, state.pid))
    started_at = ordered[0].started_at if ordered else PROCESS_START
    for state in ordered:
        for name, counter_series in state.counters.items():
            counter = merged.counters.get(name)
            if counter is None:  # a family a later version dropped
                continue
            for key, amount in counter_series:
                if folded := counter.merge(tuple(key), amount):
                    overflow[name] = overflow.get(name, 0) + int(folded)
        for name, histogram_series in state.histograms.items():
            histogram = merged.histograms.get(name)
            if histogram is None:
                continue
            for key, counts in histogram_series:
                if folded := histogram.merge(tuple(key), counts):
                    overflow[name] = overflow.get(name, 0) + int(folded)
        for decision, count in state.limiter.items():
            merged.limiter[decision] = merged.limiter.get(decision, 0) + count
        for metric, count in state.overflow.items():
            overflow[metric] = overflow.get(metric, 0) + count
        merged.bytes_in += state.bytes_in
        merged.bytes_out += state.bytes_out
        snapshot = (
            snapshot[0] + state.snapshot_counters[0],
            snapshot[1] + state.snapshot_counters[1],
            snapshot[2] + state.snapshot_counters[2],
        )
    live_gauges = [state.gauges for state in live]
    versions = [gauges.version for gauges in live_gauges if gauges.version is not None]
    applied = [gauges.applied_at for gauges in live_gauges if gauges.applied_at is not None]
    gauges = SnapshotGauges(
        ready=bool(live_gauges) and all(gauges.ready for gauges in live_gauges),
        version=min(versions) if versions else None,
        applied_at=min(applied) if applied else None,
    )
    return merged._render(gauges, snapshot, started_at, len(live_gauges))
