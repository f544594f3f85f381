"""Gateway LLM benchmark: our /v1 path against nginx, LiteLLM and Portkey, in front of one mock.

The mock (upstream.llm_mock_upstream) answers ``POST /v1/chat/completions`` with a fixed
chat completion, or, when the body says ``"stream": true``, a fixed SSE stream of 20 small
chunks, a usage chunk and ``[DONE]``. For each set-up (setups.py), started and stopped here
one after another:

1. a short warm-up at 50 connections, non-streamed then streamed (not counted);
2. wrk at 50 connections for ``--seconds``, ``"stream": false``: req/s, p50/p99, errors, and
   the CPU seconds of the set-up's processes meanwhile (from /proc);
3. the same with ``"stream": true`` (wrk reads each SSE answer to its end);
4. time to first byte at 1 connection (ttfb.py): up to ``--ttfb-requests`` streamed
   requests one after another, the time from writing the request to the first ``data:``
   bytes, p50/p99, and what each set-up adds over ``direct``.

Portkey runs the non-streamed measurement only. Then the ratios from this same run against
the goals. Results: bench/results/gateway_llm.json (every number, machine, versions) and
gateway_llm.md (the tables and the verdicts).

Run: ``make bench-llm`` (installs what it needs first), or
``.venv/bin/python -m bench.gateway.llm --seconds 5 --only direct,ours``.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.gateway import world
from bench.gateway.common import (
    RESULTS,
    ROOT,
    CpuMeter,
    CpuSpan,
    SetupUnavailable,
    command_output,
    cpu_seconds,
    cpu_used,
    fmt,
    free_port,
    machine_info,
    ratio,
)
from bench.gateway.load import LoadResult, chat_request, run_wrk
from bench.gateway.setups import Direct, LiteLLM, Nginx, Ours, Portkey, Running, Setup
from bench.gateway.ttfb import TtfbResult, run_ttfb
from bench.gateway.upstream import STREAM_EVENTS, llm_mock_upstream, nginx_version

SETUPS = ("direct", "nginx", "litellm", "portkey", "ours")
# Set-ups measured without streaming (Portkey is in for the non-streamed comparison only).
NON_STREAMING_ONLY = frozenset({"portkey"})
WARMUP_S = 3.0
BUSY_CONNECTIONS = 50
WHOLE_BODY = chat_request(stream=False)
STREAM_BODY = chat_request(stream=True)

# (numerator, denominator, which run, lowest acceptable ratio or None when only reported)
RATIO_GOALS: tuple[tuple[str, str, str, float | None], ...] = (
    ("ours", "litellm", "whole", 20.0),
    ("ours", "litellm", "stream", 20.0),
    ("ours", "nginx", "whole", None),
    ("ours", "nginx", "stream", None),
    ("ours", "portkey", "whole", None),
)
RUN_NAMES = {"whole": "non-streamed req/s at c=50", "stream": "streamed req/s at c=50"}


@dataclass
class Outcome:
    name: str
    description: str
    version: str = ""
    skipped: str = ""
    processes: int = 0
    notes: list[str] = field(default_factory=list)
    whole: LoadResult | None = None
    stream: LoadResult | None = None
    ttfb: TtfbResult | None = None
    whole_cpu_s: float | None = None
    stream_cpu_s: float | None = None
    whole_redis_cpu_s: float | None = None
    stream_redis_cpu_s: float | None = None
    # The machine's 1-minute load average when the set-up's measurements began (it is shared).
    load_average: float | None = None

    @property
    def flagged(self) -> bool:
        loads = any(run is not None and run.errors for run in (self.whole, self.stream))
        return loads or (self.ttfb is not None and self.ttfb.errors > 0)

    def per_cpu_s(self, run: str) -> float | None:
        load, cpu = (self.whole, self.whole_cpu_s) if run == "whole" else (self.stream, self.stream_cpu_s)
        if load is None or not cpu:
            return None
        return round(load.requests / cpu, 1)

    def as_dict(self) -> dict[str, object]:
        return {
            "description": self.description,
            "version": self.version,
            "skipped": self.skipped or None,
            "processes": self.processes,
            "load_average_1min_at_start": self.load_average,
            "notes": self.notes,
            "whole_c50": self.whole.as_dict() if self.whole else None,
            "stream_c50": self.stream.as_dict() if self.stream else None,
            "stream_ttfb_c1": self.ttfb.as_dict() if self.ttfb else None,
            "whole_cpu_s_c50": self.whole_cpu_s,
            "stream_cpu_s_c50": self.stream_cpu_s,
            "whole_redis_cpu_s_c50": self.whole_redis_cpu_s,
            "stream_redis_cpu_s_c50": self.stream_redis_cpu_s,
            "whole_requests_per_cpu_s": self.per_cpu_s("whole"),
            "stream_requests_per_cpu_s": self.per_cpu_s("stream"),
            "flagged_errors": self.flagged,
        }


def llm_path_landed(source: Path) -> bool:
    """Whether the worker serves /v1 (its registrar is in the worker's entry point)."""
    main = source / "gateway_sync" / "worker" / "__main__.py"
    return "register_llm_proxy" in main.read_text(errors="replace")


def export_head(folder: Path) -> tuple[Path, str]:
    """``gateway_sync`` as committed at HEAD, exported into ``folder`` (``git archive``), and its label."""
    commit = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if not commit:
        raise SetupUnavailable("git rev-parse HEAD failed: cannot export the committed worker")
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD", "gateway_sync"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SetupUnavailable(f"git archive failed: {archive.stderr.decode(errors='replace')[-300:]}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder, f"commit {commit}, exported with git archive (uncommitted changes not included)"


def _loaded(
    running: Running, body: str, seconds: float, redis_pid: int | None, label: str
) -> tuple[LoadResult, CpuSpan, list[str]]:
    """wrk at c=50 with ``body``, and the CPU the set-up (and Redis) spent meanwhile."""
    meter = CpuMeter(running.services, redis_pid)
    load = run_wrk(running.url, running.headers, connections=BUSY_CONNECTIONS, seconds=seconds, body=body)
    cpu = meter.stop()
    notes = [f"{cpu.born} process(es) started during the {label} c=50 run (a worker restarted?)"] if cpu.born else []
    return load, cpu, notes


def measure(setup: Setup, running: Running, args: argparse.Namespace, redis_pid: int | None) -> Outcome:
    outcome = Outcome(setup.name, setup.description, processes=running.processes, notes=list(running.notes))
    outcome.load_average = round(os.getloadavg()[0], 2)
    streams = setup.name not in NON_STREAMING_ONLY
    run_wrk(running.url, running.headers, connections=BUSY_CONNECTIONS, seconds=WARMUP_S, body=WHOLE_BODY)
    if streams:
        run_wrk(running.url, running.headers, connections=BUSY_CONNECTIONS, seconds=1, body=STREAM_BODY)
    outcome.whole, cpu, notes = _loaded(running, WHOLE_BODY, args.seconds, redis_pid, "non-streamed")
    outcome.whole_cpu_s, outcome.whole_redis_cpu_s = cpu.services_s, cpu.extra_s
    outcome.notes += notes
    if not streams:
        outcome.notes.append("non-streamed only (streaming not measured for this set-up)")
        return outcome
    outcome.stream, cpu, notes = _loaded(running, STREAM_BODY, args.seconds, redis_pid, "streamed")
    outcome.stream_cpu_s, outcome.stream_redis_cpu_s = cpu.services_s, cpu.extra_s
    outcome.notes += notes
    outcome.ttfb = run_ttfb(
        running.url, running.headers, STREAM_BODY, requests=args.ttfb_requests, seconds=args.seconds
    )
    if not outcome.ttfb.sample_done:
        outcome.notes.append(f"its streamed answer did not end with data: [DONE] ({outcome.ttfb.sample_events} events)")
    return outcome


def run_setup(setup: Setup, args: argparse.Namespace) -> Outcome:
    version = setup.version()
    sys.stdout.write(f"[{setup.name}] starting\n")
    sys.stdout.flush()
    try:
        if isinstance(setup, Ours) and not llm_path_landed(setup.source):
            raise SetupUnavailable("the worker does not serve /v1 yet (register_llm_proxy is not in __main__.py)")
        running = setup.start()
        redis_pid = setup.redis_pid() if isinstance(setup, Ours) else None
        outcome = measure(setup, running, args, redis_pid)
    except (SetupUnavailable, RuntimeError) as exc:
        sys.stdout.write(f"[{setup.name}] skipped: {exc}\n")
        return Outcome(setup.name, setup.description, version=version, skipped=str(exc)[:2000])
    finally:
        setup.stop()
    outcome.version = version
    whole, stream, ttfb = outcome.whole, outcome.stream, outcome.ttfb
    assert whole is not None
    text = f"[{setup.name}] non-streamed c=50: {whole.requests_per_s:.0f} req/s, p50 {whole.p50_ms:.2f} ms, "
    text += f"p99 {whole.p99_ms:.2f} ms, errors {whole.errors}, cpu {outcome.whole_cpu_s} s"
    if stream is not None and ttfb is not None:
        text += f"; streamed c=50: {stream.requests_per_s:.0f} req/s, errors {stream.errors}, "
        text += f"cpu {outcome.stream_cpu_s} s; TTFB c=1 p50 {ttfb.ttfb_p50_ms:.3f} ms, p99 {ttfb.ttfb_p99_ms:.3f} ms "
        text += f"({ttfb.requests} requests, {ttfb.sample_events} events)"
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return outcome


def summarize(outcomes: dict[str, Outcome]) -> dict[str, object]:
    direct = outcomes.get("direct")
    base = direct.ttfb if direct is not None else None
    added: dict[str, dict[str, float]] = {}
    for name, outcome in outcomes.items():
        if name == "direct" or outcome.ttfb is None or base is None:
            continue
        added[name] = {
            "ttfb_p50_ms": round(outcome.ttfb.ttfb_p50_ms - base.ttfb_p50_ms, 3),
            "ttfb_p99_ms": round(outcome.ttfb.ttfb_p99_ms - base.ttfb_p99_ms, 3),
        }

    def rps(name: str, run: str) -> float | None:
        outcome = outcomes.get(name)
        load = None if outcome is None else (outcome.whole if run == "whole" else outcome.stream)
        return load.requests_per_s if load is not None else None

    goals = []
    for numerator, denominator, run, goal in RATIO_GOALS:
        value = ratio(rps(numerator, run), rps(denominator, run))
        goals.append(
            {
                "name": f"{numerator}/{denominator} {RUN_NAMES[run]}",
                "value": value,
                "goal": f">= {goal:g}" if goal is not None else "(reported)",
                "met": None if value is None or goal is None else value >= goal,
            }
        )
    # Per CPU-second (the set-ups' own processes), steadier than req/s on a shared machine.
    for run in ("whole", "stream"):
        efficiency = {name: outcome.per_cpu_s(run) for name, outcome in outcomes.items()}
        goals.append(
            {
                "name": f"ours/litellm requests per CPU-second, {RUN_NAMES[run].removesuffix(' req/s at c=50')}",
                "value": ratio(efficiency.get("ours"), efficiency.get("litellm")),
                "goal": "(reported)",
                "met": None,
            }
        )
    ours_added = added.get("ours", {}).get("ttfb_p50_ms")
    goals.append({"name": "ours added TTFB p50 at c=1 (ms)", "value": ours_added, "goal": "(reported)", "met": None})
    return {"added_ttfb_ms": added, "goals": goals}


def markdown(report: dict[str, object], outcomes: dict[str, Outcome], summary: dict[str, object]) -> str:
    added = summary["added_ttfb_ms"]
    assert isinstance(added, dict)
    machine = report["machine"]
    assert isinstance(machine, dict)
    lines = [
        "# Gateway LLM benchmark (`POST /v1/chat/completions`)",
        "",
        f"{report['date']}, {machine['cpus']} CPUs ({machine['cpu_model']}), load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average_at_start'])}. wrk at {BUSY_CONNECTIONS} connections, "
        f'POST of a {len(WHOLE_BODY)}-byte chat-completion body (`"stream": false`, then `true`) with an auth '
        f"header, {report['seconds']:g} s per run after a warm-up; TTFB: one connection, up to "
        f"{report['ttfb_requests']} streamed requests one after another (asyncio client, time to the first "
        f"`data:` bytes). Mock upstream: nginx (1 worker), a fixed chat completion or an SSE "
        f"stream of {len(STREAM_EVENTS) - 2} chunks, a usage chunk and `[DONE]` ({report['stream_bytes']} bytes). "
        "Rerun: `make bench-llm`.",
        "",
        "| set-up | processes | non-streamed req/s | p50 / p99 (ms) | streamed req/s | p50 / p99 (ms) "
        "| TTFB p50 / p99 c=1 (ms) | added TTFB p50 / p99 (ms) | whole stream p50 c=1 (ms) "
        "| SSE events | CPU s non-str. / str. | req per CPU-s non-str. / str. | errors | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, outcome in outcomes.items():
        if outcome.skipped:
            lines.append(f"| {name} | skipped: {outcome.skipped[:200]} | | | | | | | | | | | | |")
            continue
        whole, stream, ttfb = outcome.whole, outcome.stream, outcome.ttfb
        assert whole is not None
        extra = added.get(name)
        cpu = f"{fmt(outcome.whole_cpu_s)} / {fmt(outcome.stream_cpu_s)}"
        if outcome.whole_redis_cpu_s is not None:
            cpu += f" (+ Redis {fmt(outcome.whole_redis_cpu_s)} / {fmt(outcome.stream_redis_cpu_s)})"
        errors = sum(run.errors for run in (whole, stream) if run is not None) + (ttfb.errors if ttfb else 0)
        cells = [
            name,
            str(outcome.processes or "-"),
            f"{whole.requests_per_s:,.0f}",
            f"{whole.p50_ms:.2f} / {whole.p99_ms:.2f}",
            f"{stream.requests_per_s:,.0f}" if stream else "-",
            f"{stream.p50_ms:.2f} / {stream.p99_ms:.2f}" if stream else "-",
            f"{ttfb.ttfb_p50_ms:.3f} / {ttfb.ttfb_p99_ms:.3f}" if ttfb else "-",
            f"{extra['ttfb_p50_ms']:+.3f} / {extra['ttfb_p99_ms']:+.3f}" if extra else "-",
            f"{ttfb.total_p50_ms:.3f}" if ttfb else "-",
            str(ttfb.sample_events) if ttfb else "-",
            cpu,
            f"{fmt(outcome.per_cpu_s('whole'), 0)} / {fmt(outcome.per_cpu_s('stream'), 0)}",
            f"**{errors} (flagged)**" if outcome.flagged else "0",
            fmt(outcome.load_average),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Goals (ratios from this run)",
        "",
        "| comparison | value | goal | met |",
        "| --- | --- | --- | --- |",
    ]
    goals = summary["goals"]
    assert isinstance(goals, list)
    for goal in goals:
        if goal["goal"] == "(reported)":
            verdict = "(no goal)" if goal["value"] is not None else "not measured"
        else:
            verdict = {True: "**yes**", False: "**no**", None: "not measured"}[goal["met"]]
        lines.append(f"| {goal['name']} | {fmt(goal['value'], 3)} | {goal['goal']} | {verdict} |")
    met = [g["name"] for g in goals if g["met"] is True]
    missed = [g["name"] for g in goals if g["met"] is False]
    unmeasured = [g["name"] for g in goals if g["met"] is None and g["goal"] != "(reported)"]
    lines += ["", f"Met: {', '.join(met) or 'none'}. Not met: {', '.join(missed) or 'none'}."]
    if unmeasured:
        lines.append(f"Not measured (a set-up was skipped): {', '.join(unmeasured)}.")
    notes = [f"- {name}: {note}" for name, outcome in outcomes.items() for note in outcome.notes]
    descriptions = [
        f"- `{name}`: {outcome.description}" + (f" ({outcome.version})" if outcome.version else "")
        for name, outcome in outcomes.items()
    ]
    lines += ["", "## Set-ups", "", *descriptions]
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += [
        "",
        "CPU s: user + system seconds of the set-up's processes during each c=50 run (for `ours`, Redis's own "
        "CPU is shown beside it: the request and token limiters, the usage events and the resumable streams' "
        "buffer work there). TTFB: from writing the request to reading the first `data:` bytes; whole stream: "
        "to its last byte; SSE events: the `data:` lines of one streamed answer. Added TTFB: the set-up's "
        "percentile minus `direct`'s in this run. The mock sends its whole stream at once, so TTFB here is the "
        "proxy's own overhead, not a model's; a guardrail that holds back response text (ours) would add a "
        "model's time for those tokens. The machine is shared: compare ratios within one run, not absolute "
        "numbers across runs; load avg is the machine's 1-minute load average as the set-up's runs began.",
        "",
    ]
    return "\n".join(lines)


OURS_DESCRIPTION = (
    "our worker (python -m gateway_sync.worker) on /v1, Redis mode, 2 processes: API key auth, model product "
    "`bench-model` with prices, request limit + token limits (minute, day) + monthly budget checked but never "
    "reached (Redis), usage events on (Redis stream), a guardrail policy of 2 PII redaction rules (email, phone) "
    "on requests and responses"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run (default 10)")
    parser.add_argument("--ttfb-requests", type=int, default=1000, help="streamed requests for TTFB (default 1000)")
    parser.add_argument("--only", default=",".join(SETUPS), help=f"comma-separated set-ups (default {SETUPS})")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"))
    parser.add_argument("--ours-processes", type=int, default=2)
    parser.add_argument(
        "--ours-source",
        choices=("head", "tree"),
        default="head",
        help="run our worker as committed at HEAD (default: the /v1 path is under active work, so a "
        "half-saved working tree is not measured) or from the working tree",
    )
    parser.add_argument("--output", default="gateway_llm", help="results file name (without extension)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SETUPS)
    if unknown:
        parser.error(f"unknown set-ups: {sorted(unknown)}")
    if "direct" not in chosen:
        chosen.insert(0, "direct")

    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-llm-"))
    upstream_port = free_port()
    mock = llm_mock_upstream(folder / "mock", upstream_port)
    outcomes: dict[str, Outcome] = {}
    mock_cpu_before = cpu_seconds(mock.tree())
    try:
        source, source_label = export_head(folder / "ours-source") if args.ours_source == "head" else (ROOT, "")
        factories: dict[str, Callable[[], Setup]] = {
            "direct": lambda: Direct(folder, upstream_port),
            "nginx": lambda: Nginx(folder, upstream_port),
            "litellm": lambda: LiteLLM(folder, upstream_port),
            "portkey": lambda: Portkey(folder, upstream_port),
            "ours": lambda: Ours(
                folder,
                upstream_port,
                redis_url=args.redis_url,
                processes=args.ours_processes,
                snapshot=world.llm_snapshot,
                path="/v1/chat/completions",
                description=OURS_DESCRIPTION,
                source=source,
                source_label=source_label,
            ),
        }
        for name in SETUPS:
            if name in chosen:
                outcomes[name] = run_setup(factories[name](), args)
    finally:
        mock_cpu = cpu_used(mock_cpu_before, cpu_seconds(mock.tree()))
        mock.stop()
        shutil.rmtree(folder, ignore_errors=True)

    summary = summarize(outcomes)
    report: dict[str, object] = {
        "benchmark": "gateway_llm",
        "date": datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "seconds": args.seconds,
        "warmup_seconds": WARMUP_S,
        "busy_connections": BUSY_CONNECTIONS,
        "ttfb_requests": args.ttfb_requests,
        "request_body_bytes": len(WHOLE_BODY),
        "stream_events": len(STREAM_EVENTS),
        "stream_bytes": sum(len(f"data: {event}\n\n") for event in STREAM_EVENTS),
        "mock_upstream": {"server": nginx_version(), "workers": 1, "cpu_s_whole_run": round(mock_cpu, 2)},
        "setups": {name: outcome.as_dict() for name, outcome in outcomes.items()},
        **summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.output}.md").write_text(markdown(report, outcomes, summary))
    sys.stdout.write(f"results: bench/results/{args.output}.json and .md\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
