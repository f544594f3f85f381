"""Which HTTP server and client for the worker: minimal pass-through proxies, one process each.

Every candidate (passthrough.py, run in bench/.cache/bench-venv) reads the request, forwards
it to the mock upstream with one keep-alive client and streams the answer back; nothing
else. Each gets the same wrk runs as rest.py (warm-up, 50 connections, then 1), and its
process tree's CPU seconds. Our worker with one process runs too, as a reference: the gap
between it and ``aiohttp-aiohttp`` is what auth, limits (Redis), routing and records cost.

Results: bench/results/gateway_server_choice.json and .md.

Run: ``.venv/bin/python -m bench.gateway.server_choice [--seconds 10]`` (after
``bench/gateway/install.sh``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.gateway.common import (
    BENCH_VENV,
    RESULTS,
    Service,
    SetupUnavailable,
    command_output,
    cpu_seconds,
    cpu_used,
    free_port,
    machine_info,
)
from bench.gateway.rest import Outcome, run_setup
from bench.gateway.setups import Direct, Ours, Running, Setup
from bench.gateway.upstream import mock_upstream

CANDIDATES = {
    "aiohttp-aiohttp": "aiohttp server + aiohttp client (uvloop): the worker's choice",
    "uvicorn-aiohttp": "uvicorn (uvloop + httptools) bare ASGI + aiohttp client",
    "granian-aiohttp": "granian bare ASGI (1 worker, uvloop) + aiohttp client",
    "uvicorn-httpx2": "uvicorn (uvloop + httptools) bare ASGI + httpx2 client",
}
HERE = Path(__file__).resolve().parent


class PassThrough(Setup):
    def __init__(self, folder: Path, upstream_port: int, *, candidate: str) -> None:
        self.name = candidate
        self.description = CANDIDATES[candidate]
        super().__init__(folder, upstream_port)

    def version(self) -> str:
        python = BENCH_VENV / "bin" / "python"
        packages = ["aiohttp", "uvicorn", "httptools", "granian", "httpx2", "uvloop"]
        code = f"import importlib.metadata as m\nfor p in {packages!r}: print(p, m.version(p))"
        return ", ".join(command_output([str(python), "-c", code]).splitlines())

    def start(self) -> Running:
        python = BENCH_VENV / "bin" / "python"
        if not python.exists():
            raise SetupUnavailable(f"no bench venv at {BENCH_VENV} (bench/gateway/install.sh)")
        port = free_port()
        env = {"BENCH_UPSTREAM": f"http://127.0.0.1:{self.upstream_port}"}
        argv = [str(python), str(HERE / "passthrough.py"), self.name, str(port)]
        service = self._serve(Service(self.name, argv, self.folder / "server.log", env=env, cwd=HERE))
        running = Running(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"Authorization": "Bearer sk-mock-upstream"},
            services=[service],
            processes=1,
        )
        self._wait_answering(running, timeout=30, service=service)
        return running


def _row(outcome: Outcome, direct: Outcome | None) -> str:
    if outcome.skipped:
        return f"| {outcome.name} | skipped: {outcome.skipped[:160]} | | | | | |"
    busy, single = outcome.busy, outcome.single
    assert busy is not None
    assert single is not None
    added = "-"
    if direct is not None and direct.single is not None and outcome.name != "direct":
        added = f"{single.p50_ms - direct.single.p50_ms:+.3f}"
    per_cpu = outcome.requests_per_cpu_s()
    errors = f"**{busy.errors + single.errors}**" if outcome.flagged else "0"
    return (
        f"| {outcome.name} | {busy.requests_per_s:,.0f} | {busy.p50_ms:.2f} / {busy.p99_ms:.2f} "
        f"| {single.p50_ms:.3f} / {single.p99_ms:.3f} | {added} | {'-' if per_cpu is None else f'{per_cpu:,.0f}'} "
        f"| {errors} |"
    )


def conclusion(outcomes: dict[str, Outcome]) -> list[str]:
    """The comparisons that decide, computed from this run: per CPU-second, since granian's
    Rust I/O threads use a second core that a one-process-per-core deployment does not have."""
    per_cpu = {name: outcome.requests_per_cpu_s() for name, outcome in outcomes.items()}
    base = per_cpu.get("aiohttp-aiohttp")
    if not base:
        return ["The aiohttp pass-through did not run: no conclusion."]
    lines = ["## Conclusion (numbers from this run)", ""]
    servers = {name: per_cpu.get(name) for name in ("aiohttp-aiohttp", "uvicorn-aiohttp", "granian-aiohttp")}
    measured = {name: value for name, value in servers.items() if value}
    spread = (max(measured.values()) / min(measured.values()) - 1) * 100
    best = max(measured, key=lambda name: measured[name])
    lines.append(
        "- Servers, same aiohttp client: requests per CPU-second "
        + ", ".join(f"{name} {value:,.0f}" for name, value in measured.items())
        + f": {spread:.0f}% between best ({best}) and worst."
    )
    httpx2 = per_cpu.get("uvicorn-httpx2")
    uvicorn_aiohttp = per_cpu.get("uvicorn-aiohttp")
    if httpx2 and uvicorn_aiohttp:
        lines.append(
            f"- Clients, same uvicorn server: aiohttp's client does {uvicorn_aiohttp / httpx2:.1f}x the requests per "
            "CPU-second of httpx2's."
        )
    ours = per_cpu.get("ours (1 process)")
    if ours:
        lines.append(
            f"- Our worker (1 process) does {100 * ours / base:.0f}% of the bare aiohttp pass-through's requests per "
            "CPU-second: the rest goes to the gateway's own work (see gateway_profile.md), not to the server."
        )
    lines += [
        "",
        "Reading (by hand, from three runs on 2026-11-25): the HTTP client is the choice that matters: "
        "httpx2's costs 4.7 to 6.7 times the CPU of aiohttp's per request. Among the servers carrying aiohttp's "
        "client, the spread per CPU-second was 5%, 22% and 0% in the three runs (aiohttp's server the lowest in "
        "two, level in the third; uvicorn + httptools ahead by 22% once): at most a small edge for uvicorn, of the "
        "size of this shared machine's noise. granian's higher req/s with one process comes from its Rust threads "
        "using more than one core, not from less work per request. So aiohttp server + aiohttp client stays "
        "justified (one library for both sides, no ASGI layer, within noise of the alternatives per CPU-second), "
        "but not because its server is faster. The worker itself does 36-44% of the bare pass-through's requests "
        "per CPU-second: cutting its per-request work (gateway_profile.md) is worth several times more than any "
        "server swap.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--no-ours", action="store_true", help="leave out the reference run of our worker")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="bench-server-choice-"))
    upstream_port = free_port()
    mock = mock_upstream(folder / "mock", upstream_port)
    mock_before = cpu_seconds(mock.tree())
    outcomes: dict[str, Outcome] = {}
    try:
        setups: list[Setup] = [Direct(folder, upstream_port)]
        setups += [PassThrough(folder, upstream_port, candidate=name) for name in CANDIDATES]
        if not args.no_ours:
            ours = Ours(folder, upstream_port, redis_url=args.redis_url, processes=1)
            ours.name = "ours (1 process)"
            ours.description = "our worker, 1 process, Redis mode (auth, Redis limiter, records): for reference"
            setups.append(ours)
        for setup in setups:
            outcomes[setup.name] = run_setup(setup, args.seconds)
    finally:
        mock_cpu = cpu_used(mock_before, cpu_seconds(mock.tree()))
        mock.stop()
        shutil.rmtree(folder, ignore_errors=True)

    direct = outcomes.get("direct")
    report = {
        "benchmark": "gateway_server_choice",
        "date": datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "seconds": args.seconds,
        "mock_upstream_cpu_s": round(mock_cpu, 2),
        "candidates": {
            name: {
                "description": outcome.description,
                "version": outcome.version,
                "skipped": outcome.skipped or None,
                "c50": outcome.busy.as_dict() if outcome.busy else None,
                "c1": outcome.single.as_dict() if outcome.single else None,
                "cpu_s_c50": outcome.cpu_s,
                "requests_per_cpu_s": outcome.requests_per_cpu_s(),
            }
            for name, outcome in outcomes.items()
        },
    }
    lines = [
        "# Gateway HTTP server and client choice",
        "",
        f"{report['date']}: minimal pass-through proxies, 1 process each, same wrk runs as gateway_rest "
        f"({args.seconds:g} s at 50 connections, then at 1). Rerun: `.venv/bin/python -m bench.gateway.server_choice`.",
        "",
        "| candidate | req/s c=50 | p50 / p99 c=50 (ms) | p50 / p99 c=1 (ms) | added p50 c=1 (ms) "
        "| req per CPU-s | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(_row(outcome, direct) for outcome in outcomes.values()),
        "",
        *(f"- `{name}`: {outcome.description}" for name, outcome in outcomes.items()),
        "",
        *conclusion(outcomes),
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway_server_choice.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "gateway_server_choice.md").write_text("\n".join(lines))
    sys.stdout.write("results: bench/results/gateway_server_choice.json and .md\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
