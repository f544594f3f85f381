"""Gateway REST benchmark: our worker against nginx, LiteLLM and Portkey, in front of one mock.

For each set-up (setups.py), started and stopped here one after another:

1. a short warm-up at 50 connections (not counted);
2. wrk at 50 connections for ``--seconds``: req/s, p50/p99, errors, and the CPU seconds of
   the set-up's processes meanwhile (from /proc), hence req/s per CPU-second;
3. wrk at 1 connection for ``--seconds``: p50/p99, and the latency added over ``direct``.

Then the ratios from this same run against the goals. Results: bench/results/gateway_rest.json
(every number, machine, versions) and gateway_rest.md (the table and the verdicts).

Run: ``make bench-gateway`` (installs what it needs first), or
``.venv/bin/python -m bench.gateway.rest --seconds 5 --only direct,ours``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.gateway.common import (
    RESULTS,
    CpuMeter,
    SetupUnavailable,
    cpu_seconds,
    cpu_used,
    fmt,
    free_port,
    machine_info,
    ratio,
)
from bench.gateway.load import CHAT_REQUEST, LoadResult, run_wrk
from bench.gateway.setups import Direct, LiteLLM, Nginx, Ours, Portkey, Running, Setup
from bench.gateway.upstream import mock_upstream, nginx_version

SETUPS = ("direct", "nginx", "litellm", "portkey", "ours")
WARMUP_S = 3.0
BUSY_CONNECTIONS = 50

# (numerator, denominator, what is compared, lowest acceptable ratio)
RATIO_GOALS = (
    ("ours", "litellm", "req/s at c=50", 20.0),
    ("ours", "portkey", "req/s at c=50", 3.0),
    ("ours", "nginx", "req/s at c=50", 0.2),
)
ADDED_P50_GOAL_MS = 0.5


@dataclass
class Outcome:
    name: str
    description: str
    version: str = ""
    skipped: str = ""
    processes: int = 0
    notes: list[str] = field(default_factory=list)
    busy: LoadResult | None = None
    single: LoadResult | None = None
    cpu_s: float | None = None
    redis_cpu_s: float | None = None

    @property
    def flagged(self) -> bool:
        return any(run is not None and run.errors for run in (self.busy, self.single))

    def requests_per_cpu_s(self) -> float | None:
        if self.busy is None or not self.cpu_s:
            return None
        return round(self.busy.requests / self.cpu_s, 1)


def measure(setup: Setup, running: Running, seconds: float, redis_pid: int | None) -> Outcome:
    outcome = Outcome(setup.name, setup.description, processes=running.processes, notes=list(running.notes))
    run_wrk(running.url, running.headers, connections=BUSY_CONNECTIONS, seconds=WARMUP_S)
    meter = CpuMeter(running.services, redis_pid)
    outcome.busy = run_wrk(running.url, running.headers, connections=BUSY_CONNECTIONS, seconds=seconds)
    cpu = meter.stop()
    if cpu.born:
        outcome.notes.append(f"{cpu.born} process(es) started during the c=50 run (a worker restarted?)")
    outcome.cpu_s, outcome.redis_cpu_s = cpu.services_s, cpu.extra_s
    outcome.single = run_wrk(running.url, running.headers, connections=1, seconds=seconds)
    return outcome


def run_setup(setup: Setup, seconds: float) -> Outcome:
    version = setup.version()
    sys.stdout.write(f"[{setup.name}] starting\n")
    sys.stdout.flush()
    try:
        running = setup.start()
        redis_pid = setup.redis_pid() if isinstance(setup, Ours) else None
        outcome = measure(setup, running, seconds, redis_pid)
    except (SetupUnavailable, RuntimeError) as exc:
        sys.stdout.write(f"[{setup.name}] skipped: {exc}\n")
        return Outcome(setup.name, setup.description, version=version, skipped=str(exc)[:2000])
    finally:
        setup.stop()
    outcome.version = version
    busy, single = outcome.busy, outcome.single
    assert busy is not None and single is not None
    sys.stdout.write(
        f"[{setup.name}] c=50: {busy.requests_per_s:.0f} req/s, p50 {busy.p50_ms:.2f} ms, p99 {busy.p99_ms:.2f} ms, "
        f"errors {busy.errors}; c=1: p50 {single.p50_ms:.3f} ms, p99 {single.p99_ms:.3f} ms; cpu {outcome.cpu_s} s\n"
    )
    sys.stdout.flush()
    return outcome


def summarize(outcomes: dict[str, Outcome]) -> dict[str, object]:
    direct = outcomes.get("direct")
    base_single = direct.single if direct is not None else None
    base_busy = direct.busy if direct is not None else None
    added: dict[str, dict[str, float]] = {}
    for name, outcome in outcomes.items():
        if name == "direct" or outcome.single is None or base_single is None or base_busy is None:
            continue
        assert outcome.busy is not None
        added[name] = {
            "c1_p50_ms": round(outcome.single.p50_ms - base_single.p50_ms, 3),
            "c1_p99_ms": round(outcome.single.p99_ms - base_single.p99_ms, 3),
            "c50_p50_ms": round(outcome.busy.p50_ms - base_busy.p50_ms, 3),
            "c50_p99_ms": round(outcome.busy.p99_ms - base_busy.p99_ms, 3),
        }

    def rps(name: str) -> float | None:
        outcome = outcomes.get(name)
        return outcome.busy.requests_per_s if outcome is not None and outcome.busy is not None else None

    goals = []
    for numerator, denominator, compared, goal in RATIO_GOALS:
        value = ratio(rps(numerator), rps(denominator))
        goals.append(
            {
                "name": f"{numerator}/{denominator} {compared}",
                "value": value,
                "goal": f">= {goal:g}",
                "met": None if value is None else value >= goal,
            }
        )
    ours_added = added.get("ours", {}).get("c1_p50_ms")
    goals.append(
        {
            "name": "ours added p50 latency at c=1 (ms)",
            "value": ours_added,
            "goal": f"<= {ADDED_P50_GOAL_MS:g}",
            "met": None if ours_added is None else ours_added <= ADDED_P50_GOAL_MS,
        }
    )
    return {"added_latency_ms": added, "goals": goals}


def markdown(report: dict[str, object], outcomes: dict[str, Outcome], summary: dict[str, object]) -> str:
    added = summary["added_latency_ms"]
    assert isinstance(added, dict)
    machine = report["machine"]
    assert isinstance(machine, dict)
    lines = [
        "# Gateway REST benchmark",
        "",
        f"{report['date']}, {machine['cpus']} CPUs ({machine['cpu_model']}), load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average_at_start'])}. wrk: POST of a "
        f"{report['request_body_bytes']}-byte chat-completion body with an auth header, {report['seconds']:g} s per "
        f"run after a {WARMUP_S:g} s warm-up; mock upstream: nginx `return 200` (1 worker). "
        "Rerun: `make bench-gateway`.",
        "",
        "| set-up | processes | req/s c=50 | p50 / p99 c=50 (ms) | p50 / p99 c=1 (ms) | added p50 / p99 c=1 (ms) "
        "| CPU s | req per CPU-s | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, outcome in outcomes.items():
        if outcome.skipped:
            lines.append(f"| {name} | skipped: {outcome.skipped[:160]} | | | | | | | |")
            continue
        busy, single = outcome.busy, outcome.single
        assert busy is not None and single is not None
        extra = added.get(name)
        added_text = "-" if extra is None else f"{extra['c1_p50_ms']:+.3f} / {extra['c1_p99_ms']:+.3f}"
        cpu = fmt(outcome.cpu_s)
        if outcome.redis_cpu_s is not None:
            cpu += f" (+ Redis {outcome.redis_cpu_s:.2f})"
        errors = f"**{busy.errors + single.errors} (flagged)**" if outcome.flagged else "0"
        lines.append(
            f"| {name} | {outcome.processes or '-'} | {busy.requests_per_s:,.0f} "
            f"| {busy.p50_ms:.2f} / {busy.p99_ms:.2f} "
            f"| {single.p50_ms:.3f} / {single.p99_ms:.3f} | {added_text} | {cpu} "
            f"| {fmt(outcome.requests_per_cpu_s(), 0)} | {errors} |"
        )
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
        verdict = {True: "**yes**", False: "**no**", None: "not measured"}[goal["met"]]
        lines.append(f"| {goal['name']} | {fmt(goal['value'], 3)} | {goal['goal']} | {verdict} |")
    met = [g["name"] for g in goals if g["met"] is True]
    missed = [g["name"] for g in goals if g["met"] is False]
    unmeasured = [g["name"] for g in goals if g["met"] is None]
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
        "CPU s: user + system seconds of the set-up's processes during the c=50 run (for `ours`, Redis's own "
        "CPU is shown beside it: the limiter's work happens there). Added latency: the set-up's percentile minus "
        "`direct`'s in this run. The machine is shared: compare ratios within one run, not absolute numbers "
        "across runs.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured wrk run (default 10)")
    parser.add_argument("--only", default=",".join(SETUPS), help=f"comma-separated set-ups (default {SETUPS})")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"))
    parser.add_argument("--ours-processes", type=int, default=2)
    parser.add_argument("--output", default="gateway_rest", help="results file name (without extension)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SETUPS)
    if unknown:
        parser.error(f"unknown set-ups: {sorted(unknown)}")
    if "direct" not in chosen:
        chosen.insert(0, "direct")

    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    upstream_port = free_port()
    mock = mock_upstream(folder / "mock", upstream_port)
    outcomes: dict[str, Outcome] = {}
    mock_cpu_before = cpu_seconds(mock.tree())
    try:
        factories = {
            "direct": lambda: Direct(folder, upstream_port),
            "nginx": lambda: Nginx(folder, upstream_port),
            "litellm": lambda: LiteLLM(folder, upstream_port),
            "portkey": lambda: Portkey(folder, upstream_port),
            "ours": lambda: Ours(folder, upstream_port, redis_url=args.redis_url, processes=args.ours_processes),
        }
        for name in SETUPS:
            if name in chosen:
                outcomes[name] = run_setup(factories[name](), args.seconds)
    finally:
        mock_cpu = cpu_used(mock_cpu_before, cpu_seconds(mock.tree()))
        mock.stop()
        shutil.rmtree(folder, ignore_errors=True)

    summary = summarize(outcomes)
    report: dict[str, object] = {
        "benchmark": "gateway_rest",
        "date": datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "seconds": args.seconds,
        "warmup_seconds": WARMUP_S,
        "busy_connections": BUSY_CONNECTIONS,
        "request_body_bytes": len(CHAT_REQUEST),
        "mock_upstream": {"server": nginx_version(), "workers": 1, "cpu_s_whole_run": round(mock_cpu, 2)},
        "setups": {
            name: {
                "description": outcome.description,
                "version": outcome.version,
                "skipped": outcome.skipped or None,
                "processes": outcome.processes,
                "notes": outcome.notes,
                "c50": outcome.busy.as_dict() if outcome.busy else None,
                "c1": outcome.single.as_dict() if outcome.single else None,
                "cpu_s_c50": outcome.cpu_s,
                "redis_cpu_s_c50": outcome.redis_cpu_s,
                "requests_per_cpu_s": outcome.requests_per_cpu_s(),
                "flagged_errors": outcome.flagged,
            }
            for name, outcome in outcomes.items()
        },
        **summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.output}.md").write_text(markdown(report, outcomes, summary))
    sys.stdout.write(f"results: bench/results/{args.output}.json and .md\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
