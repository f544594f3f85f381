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
whichever process accepts the connection), the processes share their numbers through files.
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

import asyncio
import functools
import importlib.metadata
import logging
import math
import os
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path

import msgspec
from aiohttp import web

from gateway_sync.worker.app import HOLDER_KEY, NO_STORE, OBSERVERS_KEY, SETTINGS_KEY
from gateway_sync.worker.heartbeat import write_atomically
from gateway_sync.worker.processes import SUPERVISOR_PID_ENV, shared_metrics_dir
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
from gateway_sync.worker.supervisor import BackgroundTasks

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_MAX_SERIES = 2_000
DURATION_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OTHER = "other"
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

Key = tuple[str, ...]


@functools.cache
def _build_version() -> str:
    try:
        return importlib.metadata.version("ai-open-platform")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(value)


def label_text(names: Iterable[str], values: Iterable[str]) -> str:
    """``name="value",...`` (no braces): the label part of a sample line."""
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in zip(names, values, strict=True))


class _Family:
    """The series of one metric: label tuple -> value (counter) or buckets (histogram)."""

    def __init__(
        self, name: str, help_text: str, labels: tuple[str, ...], *, max_series: int, overflow: Callable[[str], None]
    ) -> None:
        self.name = name
        self.help_text = help_text
        self.labels = labels
        self.max_series = max_series
        self._overflow = overflow
        # Where "product" and "route" sit in a key: what a fold replaces with "other".
        self._foldable = tuple(i for i, label in enumerate(labels) if label in ("product", "route"))
        self.label_texts: dict[Key, str] = {}

    def admit(self, key: Key) -> Key:
        """The key to record ``key`` under: itself while the family has room, else folded.
        Registers the returned key's label text."""
        if len(self.label_texts) >= self.max_series and self._foldable:
            key = self.fold(key)
            self._overflow(self.name)
        if key not in self.label_texts:
            self.label_texts[key] = label_text(self.labels, key)
        return key

    def fold(self, key: Key) -> Key:
        return tuple(OTHER if i in self._foldable else value for i, value in enumerate(key))

    def merge_key(self, key: Key) -> tuple[Key, bool]:
        """For merging processes' states: the key to add ``key``'s numbers under (itself if
        present or while there is room, else folded), and whether it was folded here."""
        if key not in self.label_texts:
            if len(self.label_texts) >= self.max_series and self._foldable:
                folded = self.fold(key)
                if folded != key:
                    self.label_texts.setdefault(folded, label_text(self.labels, folded))
                    return folded, True
            self.label_texts[key] = label_text(self.labels, key)
        return key, False

    def header(self, kind: str) -> str:
        return f"# HELP {self.name} {escape_help(self.help_text)}\n# TYPE {self.name} {kind}\n"


class Counter(_Family):
    def __init__(
        self, name: str, help_text: str, labels: tuple[str, ...], *, max_series: int, overflow: Callable[[str], None]
    ) -> None:
        super().__init__(name, help_text, labels, max_series=max_series, overflow=overflow)
        self.values: dict[Key, float] = {}

    def inc(self, key: Key, amount: float = 1) -> None:
        try:
            self.values[key] += amount
        except KeyError:
            key = self.admit(key)
            self.values[key] = self.values.get(key, 0) + amount

    def merge(self, key: Key, amount: float) -> float:
        """Add another process's value; the amount folded into "other" here (else 0)."""
        key, folded = self.merge_key(key)
        self.values[key] = self.values.get(key, 0) + amount
        return amount if folded else 0

    def render(self, out: list[str]) -> None:
        out.append(self.header("counter"))
        texts = self.label_texts
        for key, value in self.values.items():
            labels = texts[key]
            braces = f"{{{labels}}}" if labels else ""
            out.append(f"{self.name}{braces} {format_value(value)}\n")


class Histogram(_Family):
    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...],
        *,
        bounds: tuple[float, ...],
        max_series: int,
        overflow: Callable[[str], None],
    ) -> None:
        super().__init__(name, help_text, labels, max_series=max_series, overflow=overflow)
        self.bounds = bounds
        self._le = (*(format_value(bound) for bound in bounds), "+Inf")
        # Per key: one count per bucket (not cumulative; the last is +Inf), then the sum.
        self.buckets: dict[Key, list[float]] = {}

    def observe(self, key: Key, value: float) -> None:
        try:
            counts = self.buckets[key]
        except KeyError:
            key = self.admit(key)
            if key not in self.buckets:
                self.buckets[key] = [0.0] * (len(self.bounds) + 2)
            counts = self.buckets[key]
        # bisect_left: the first bound >= value, as "le" (less than or equal) requires.
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def merge(self, key: Key, counts: Sequence[float]) -> float:
        """Add another process's bucket counts and sum; the observations folded into
        "other" here (else 0)."""
        key, folded = self.merge_key(key)
        mine = self.buckets.setdefault(key, [0.0] * (len(self.bounds) + 2))
        for index, count in enumerate(counts):
            mine[index] += count
        return sum(counts[:-1]) if folded else 0

    def render(self, out: list[str]) -> None:
        out.append(self.header("histogram"))
        name = self.name
        for key, counts in self.buckets.items():
            labels = self.label_texts[key]
            prefix = f"{labels}," if labels else ""
            total = 0
            for le, count in zip(self._le, counts, strict=False):
                total += int(count)
                out.append(f'{name}_bucket{{{prefix}le="{le}"}} {total}\n')
            braces = f"{{{labels}}}" if labels else ""
            out.append(f"{name}_sum{braces} {format_value(counts[-1])}\n")
            out.append(f"{name}_count{braces} {total}\n")


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
        _simple(
            out,
            "gateway_limiter_decisions_total",
            "Rate limiter decisions on finished requests.",
            "counter",
            "decision",
            self.limiter.items(),
        )
        _simple(
            out,
            "gateway_request_bytes_total",
            "Body bytes received from clients (in) and sent to them (out).",
            "counter",
            "direction",
            [("in", self.bytes_in), ("out", self.bytes_out)],
        )
        _simple(
            out,
            "gateway_metrics_label_overflow_total",
            f"Observations folded into product/route=other because the metric had {self.requests.max_series} "
            "label sets already.",
            "counter",
            "metric",
            self.overflow.items(),
        )
        _render_snapshot(out, gauges, snapshot_counters)
        _simple(out, "gateway_build_info", "The worker's version.", "gauge", "version", [(self.version, 1)])
        _simple(
            out,
            "gateway_process_start_time_seconds",
            "Unix time the worker started (under a supervisor: the earliest start among the processes counted).",
            "gauge",
            "",
            [("", started_at)],
        )
        _simple(
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
    _simple(
        out, "gateway_snapshot_ready", "1 once a snapshot is applied, else 0.", "gauge", "", [("", int(gauges.ready))]
    )
    version = [] if gauges.version is None else [("", gauges.version)]
    _simple(
        out, "gateway_snapshot_version", "Version of the snapshot served (absent before one).", "gauge", "", version
    )
    applied_at = [] if gauges.applied_at is None else [("", gauges.applied_at)]
    _simple(
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
        _simple(out, f"gateway_snapshot_{name}_total", help_text, "counter", "", [("", value)])


def _simple(
    out: list[str], name: str, help_text: str, kind: str, label: str, samples: Iterable[tuple[str, float]]
) -> None:
    """A metric with one label (or none, when ``label`` is "")."""
    out.append(f"# HELP {name} {escape_help(help_text)}\n# TYPE {name} {kind}\n")
    for value, number in samples:
        labels = f'{{{label}="{escape_label_value(value)}"}}' if label else ""
        out.append(f"{name}{labels} {format_value(number)}\n")


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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ProcessState)


class SharedMetrics:
    """Under a supervisor: this process's state written to the supervisor's folder, and
    ``/metrics`` answered with every process's numbers (see the module docstring)."""

    def __init__(
        self,
        metrics: Metrics,
        directory: Path,
        worker_id: str,
        *,
        pid: int | None = None,
        interval_s: float = WRITE_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.directory = directory
        self.worker_id = worker_id
        self.pid = os.getpid() if pid is None else pid
        self.path = directory / f"{worker_id}.{self.pid}.json"
        self.interval_s = interval_s
        self._clock = clock
        # Files already reported as unreadable, by name and modification time: logged once.
        self._reported: set[tuple[str, int]] = set()
        self._write_failing = False

    def state(self) -> ProcessState:
        return self.metrics.state(pid=self.pid, worker_id=self.worker_id, now=self._clock())

    def write(self) -> bytes:
        """Write this process's state (atomically: temporary file, then rename), and return
        it encoded. A failure is logged (once until a write succeeds again), not raised."""
        data = _encoder.encode(self.state())
        try:
            write_atomically(self.path, data)
        except OSError as exc:
            if not self._write_failing:
                log.warning("cannot write this worker's metrics to %s: %s", self.path, exc)
            self._write_failing = True
        else:
            self._write_failing = False
        return data

    async def run(self) -> None:
        while True:
            self.write()
            await asyncio.sleep(self.interval_s)

    def load(self, own: ProcessState) -> tuple[list[ProcessState], list[ProcessState]]:
        """Every process's state (``own`` for this one) and the live ones among them."""
        states = [own]
        live = [own]
        fresh_since = own.written_at - FRESH_S
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:  # pragma: no cover (the folder vanished while listed)
            paths = []
        for path in paths:
            if path == self.path:
                continue
            state = self._read(path)
            if state is None:
                continue
            states.append(state)
            if state.written_at >= fresh_since and state.pid != self.pid and pid_alive(state.pid):
                live.append(state)
        return states, live

    def _read(self, path: Path) -> ProcessState | None:
        try:
            modified = path.stat().st_mtime_ns
            data = path.read_bytes()
        except FileNotFoundError:  # removed since listed
            return None
        except OSError as exc:
            self._report(path, 0, exc)
            return None
        try:
            state = _decoder.decode(data)
            check_state(state)
        except (msgspec.DecodeError, ValueError) as exc:  # a ValidationError is a DecodeError
            self._report(path, modified, exc)
            return None
        return state

    def _report(self, path: Path, modified: int, exc: Exception) -> None:
        if (path.name, modified) not in self._reported:
            self._reported.add((path.name, modified))
            log.warning("metrics file %s skipped: %s", path, exc)

    def render(self) -> bytes:
        """Every process's numbers merged. This process's state is written first, so that
        whatever this answer shows is on disk should the process die right after."""
        return self.merge(self.write())

    async def render_off_loop(self) -> bytes:
        """``render``, with the reading and merging in a thread: at 2,000 label sets per
        family, merging four processes takes about 150 ms. Only the encoding of this
        process's live state (a few ms at most) runs on the event loop."""
        return await asyncio.to_thread(self.merge, self.write())

    def merge(self, own: bytes) -> bytes:
        """This process's encoded state merged with the other files of the folder."""
        states, live = self.load(_decoder.decode(own))
        return merge_states(states, live, max_series=self.metrics.max_series)


METRICS_KEY = web.AppKey("metrics", Metrics)
SHARED_METRICS_KEY = web.AppKey("shared_metrics", SharedMetrics)
METRICS_HEADERS = {**NO_STORE, "Content-Type": CONTENT_TYPE}


def supervisor_pid() -> int | None:
    """The supervisor's pid when this process runs under one (processes.py), else None."""
    raw = os.environ.get(SUPERVISOR_PID_ENV, "")
    return int(raw) if raw.isdigit() else None


def register_metrics(app: web.Application) -> None:
    """Count every proxied request and serve ``GET /metrics`` (and HEAD). Under a
    supervisor, also share the numbers with the sibling processes."""
    metrics = Metrics(app[HOLDER_KEY])
    app[METRICS_KEY] = metrics
    app[OBSERVERS_KEY].append(metrics)
    app.router.add_get("/metrics", metrics_endpoint, allow_head=True)
    supervisor = supervisor_pid()
    if supervisor is not None:
        directory = shared_metrics_dir(supervisor)
        app[SHARED_METRICS_KEY] = SharedMetrics(metrics, directory, app[SETTINGS_KEY].worker_id)
        app.cleanup_ctx.append(_shared_metrics_lifespan)


async def _shared_metrics_lifespan(app: web.Application) -> AsyncIterator[None]:
    shared = app[SHARED_METRICS_KEY]
    tasks = BackgroundTasks()
    tasks.start("metrics-writer", shared.run)
    try:
        yield
    finally:
        await tasks.stop()
        # The server has stopped: every request has been counted. The final numbers.
        shared.write()


async def metrics_endpoint(request: web.Request) -> web.Response:
    app = request.app
    # Under a supervisor, every process's numbers; else this one's.
    if SHARED_METRICS_KEY in app:
        return web.Response(body=await app[SHARED_METRICS_KEY].render_off_loop(), headers=METRICS_HEADERS)
    return web.Response(body=app[METRICS_KEY].render(), headers=METRICS_HEADERS)
