"""Where one of our worker's processes spends its time under load: py-spy, summarized as text.

Starts the mock upstream and our worker (Redis mode, ``--processes``, 2 by default) as
rest.py does, loads it with wrk at 50 connections, and samples one worker process with
``py-spy record --format raw`` (collapsed stacks) for ``--seconds``. Writes
bench/results/gateway_profile.json (the aggregated tables) and the tables into
gateway_profile.md, after the hand-written reading kept in FINDINGS below. No flame graph
is committed: rerun this for one (``--speedscope PATH``).

Run: ``.venv/bin/python -m bench.gateway.profile_worker`` (after ``bench/gateway/install.sh``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench.gateway.common import BENCH_VENV, RESULTS, free_port, machine_info
from bench.gateway.load import LoadResult, run_wrk
from bench.gateway.setups import Ours
from bench.gateway.upstream import mock_upstream

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# A sample from the event loop's thread has the worker's entry point in its stack.
MAIN_THREAD_MARKER = "gateway_sync/worker/__main__.py"
# Which bucket a sample's innermost frame falls in, by its file (first match wins).
BUCKETS = (
    ("event loop (uvloop's run loop, in C)", ("uvloop/", "asyncio/runners.py")),
    ("socket writes (aiohttp writer, asyncio streams)", ("http_writer.py", "asyncio/streams.py")),
    ("Redis client (limiter, usage stream)", ("redis/",)),
    ("our code (gateway_sync)", ("gateway_sync/",)),
    ("aiohttp server and client (parsing, protocol)", ("aiohttp/", "multidict/", "yarl/")),
    ("asyncio (tasks, timeouts)", ("asyncio/",)),
)

# The reading of the last profile, by hand (the numbers it cites are from that run).
FINDINGS = """\
## Reading (by hand, from the runs of 2026-11-25 at commit 2ec6003; percentages move a few points run to run)

Since 2ec6003 ("small request bodies sent whole, small responses ... sent in one write,
ids without uuid4") the request and response each take one write, and our own functions
are each under 2% of the event loop's samples. What is left, by inclusive time:

1. **The Redis limiter: 25-27% of the loop's samples, and one network round trip per
   request before the upstream is called** (`_check_limits` -> `RedisLimiter.check` ->
   `_run` -> `_eval` -> redis-py `evalsha`). It is most of the latency our worker adds at
   c=1 over a bare aiohttp pass-through (`ours (1 process)` against `aiohttp-aiohttp` in
   gateway_server_choice.md: about +0.35 to +0.6 ms). Inside it, redis-py's own Python:
   `pack_command` (2.5% own), `Encoder.encode`, `BlockingConnectionPool.get_connection`,
   the pure-Python `_AsyncRESP3Parser` (hiredis is not installed), and an
   `asyncio.timeout` around each read because `limiter_redis_client` sets
   `socket_timeout=0.25` (`timeout`, `Timeout.reschedule`, `Timeout.__aexit__`,
   `current_task`: 4-5% own together). What I would change, largest first:
   - batch the checks of concurrent requests into one pipelined call per loop turn: one
     round trip and one write for many requests, each still with its exact decision;
   - or a local lease: take N units per Redis call and spend them in the process, exact
     to within N per process (a bound to document next to the plan's limit);
   - install `hiredis` (redis-py uses it when present: replies parsed in C);
   - one timeout per check (`asyncio.timeout` around the whole `evalsha`) instead of
     redis-py's per-read `socket_timeout`;
   - small: `uuid.uuid4().hex` is still the limiter's per-check `token` (limits.py; the
     request ids moved to `worker/ids.py`), and each decision is built twice
     (`dataclasses.replace(self._parse(...))`, `replace` 1.3% own).
2. **The usage emitter: about 7%**: `UsageEmitter.flush` -> `RedisStreamSink` XADDs
   (4.5%, a second Redis client on the loop) and `observe` + `usage_event` per request
   (2.4%; `usage_event` alone 1.8% own). Build the event at flush time from the raw
   fields, and give the stream writes a larger batch under load.
3. **Socket writes are the floor**: `aiohttp.http_writer.StreamWriter._writelines` (12-15%
   own) and `asyncio.StreamWriter.writelines` (redis-py, 5%) are `send()` system calls
   charged to the frame that makes them; one per direction per request is the minimum,
   plus one per Redis command (so item 1 removes some).
4. Four middlewares (`track_requests`, `json_errors`, `pin_snapshot`, then
   `notify_observers` for the records), each a coroutine frame per request: about 5%
   between `track_requests` (59.8% inclusive) and `_handle` (54.1%). Folding them into
   one would save a few percent.
5. Not speed but noise: when a client goes away mid-request (every wrk run's end), the
   worker logs it at ERROR with a full traceback from `aiohttp.server`: at 2ec6003
   `ConnectionResetError: Connection lost` raised from `RequestBody.buffer`
   (`wire.py`, reading the body in `_single_attempt`), 13 of them after a 3 s run; before
   it, `ClientConnectionResetError: Cannot write to closing transport` from `_deliver`.
   A client that leaves is not a gateway error: catch it in the handler, DEBUG and a
   counter.

Nothing was changed in the worker here (the brief: measure, list, do not change).
"""


def aggregate(raw: str) -> dict[str, object]:
    """Own and inclusive samples per function, for the event loop's thread only.

    Other threads (the default executor's, waiting in ``queue.get`` most of the time, which
    py-spy does not always recognise as idle) are counted apart.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    other_threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if MAIN_THREAD_MARKER not in stack:
            other_threads[_name(stack.split(";")[-1])] += count
            continue
        total += count
        frames = [_name(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        buckets[_bucket(stack.split(";")[-1])] += count

    def share(counter: Counter[str], limit: int, keep: str = "") -> list[dict[str, object]]:
        rows = [(name, n) for name, n in counter.most_common() if keep in name][:limit]
        return [{"function": name, "samples": n, "percent": round(100 * n / total, 1)} for name, n in rows]

    return {
        "samples": total,
        "own": share(own, 30),
        "inclusive_ours": share(inclusive, 30, keep="gateway_sync/"),
        "buckets": share(buckets, 10),
        "other_thread_samples": sum(other_threads.values()),
        "other_threads_top": [{"function": name, "samples": n} for name, n in other_threads.most_common(5)],
    }


def _name(frame: str) -> str:
    match = FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['function']} ({path})"


def _bucket(frame: str) -> str:
    for name, markers in BUCKETS:
        if any(marker in frame for marker in markers):
            return name
    return "other"


def _table(rows: object, header: str) -> list[str]:
    assert isinstance(rows, list)
    lines = [f"| {header} | samples | % |", "| --- | --- | --- |"]
    lines += [f"| `{row['function']}` | {row['samples']} | {row['percent']} |" for row in rows]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--speedscope", help="also write a speedscope profile there (not committed)")
    args = parser.parse_args(argv)
    py_spy = BENCH_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        sys.stderr.write(f"no py-spy in {BENCH_VENV}: run bench/gateway/install.sh\n")
        return 1

    folder = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    upstream_port = free_port()
    mock = mock_upstream(folder / "mock", upstream_port)
    ours = Ours(folder, upstream_port, redis_url=args.redis_url, processes=args.processes)
    load: dict[str, LoadResult] = {}
    try:
        running = ours.start()
        run_wrk(running.url, running.headers, connections=50, seconds=3)
        tree = ours.services[0].tree()
        # With a supervisor the first pid only forwards signals: sample a serving child.
        target = tree[-1]
        worker = threading.Thread(
            target=lambda: load.setdefault(
                "c50", run_wrk(running.url, running.headers, connections=50, seconds=args.seconds + 2)
            )
        )
        worker.start()
        raw_path = folder / "profile.txt"
        command = [str(py_spy), "record", "-p", str(target), "-d", str(round(args.seconds)), "-r", "250"]
        subprocess.run([*command, "-f", "raw", "-o", str(raw_path)], capture_output=True, check=True, timeout=120)
        worker.join()
        if args.speedscope:
            subprocess.run([*command, "-d", "5", "-f", "speedscope", "-o", args.speedscope], check=False)
        raw = raw_path.read_text()
    finally:
        ours.stop()
        mock.stop()
    shutil.rmtree(folder, ignore_errors=True)

    tables = aggregate(raw)
    other_top = tables["other_threads_top"]
    assert isinstance(other_top, list)
    busy = load["c50"]
    report = {
        "benchmark": "gateway_profile",
        "date": datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "worker_processes": running.processes,
        "profiled_pid_of": len(tree),
        "load": busy.as_dict(),
        **tables,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway_profile.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Gateway worker profile",
        "",
        f"{report['date']}: py-spy (250 Hz, {args.seconds:g} s, Python frames) on one of our worker's "
        f"{running.processes} processes, Redis mode, under wrk at 50 connections ({busy.requests_per_s:,.0f} req/s "
        f"for the whole worker meanwhile, {busy.errors} errors). {tables['samples']} samples of the event "
        f"loop's thread ({tables['other_thread_samples']} more in other threads, left out: "
        f"{', '.join(row['function'] for row in other_top)}). "
        "Rerun: `.venv/bin/python -m bench.gateway.profile_worker`.",
        "",
        FINDINGS,
        "## Where the samples' innermost frame is",
        "",
        *_table(tables["buckets"], "bucket"),
        "",
        "## Top functions by own time",
        "",
        *_table(tables["own"], "function"),
        "",
        "## Our functions by inclusive time",
        "",
        *_table(tables["inclusive_ours"], "function"),
        "",
    ]
    (RESULTS / "gateway_profile.md").write_text("\n".join(lines))
    sys.stdout.write("results: bench/results/gateway_profile.json and .md\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
