"""wrk runs: one request shape (a POST with a JSON body and headers), results as a typed record.

The Lua script sets the method and body, and its ``done()`` hook prints one JSON line with
wrk's own counts and latency percentiles (in microseconds), so nothing is parsed from wrk's
human-readable output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path


def chat_request(*, stream: bool = False) -> str:
    """A ~300-byte OpenAI chat-completion request, streamed or not."""
    return json.dumps(
        {
            "model": "bench-model",
            "messages": [
                {"role": "system", "content": "You are a terse assistant used by a load test."},
                {
                    "role": "user",
                    "content": "Say hello to the benchmark in one short sentence, please, and nothing more.",
                },
            ],
            "temperature": 0,
            "max_tokens": 16,
            "n": 1,
            "stream": stream,
            "user": "bench-user-0001",
        },
        separators=(",", ":"),
    )


CHAT_REQUEST = chat_request()

_LUA = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {{"duration_us":%d,"requests":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


@dataclass(frozen=True)
class LoadResult:
    connections: int
    seconds: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    # Socket errors (connect, read, write, timeout) and answers that are not 2xx/3xx.
    socket_errors: int
    non_2xx: int

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "errors": self.errors}


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    return found


def lua_script(headers: Mapping[str, str], body: str = CHAT_REQUEST) -> str:
    lines = [f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in headers.items()]
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    return _LUA.format(body=body, headers="\n".join(lines))


def run_wrk(
    url: str,
    headers: Mapping[str, str],
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    timeout_s: float = 5.0,
    body: str = CHAT_REQUEST,
) -> LoadResult:
    """``connections`` keep-alive connections POSTing ``body`` (the chat request) for ``seconds``;
    wrk reads each answer whole, a streamed one to its last chunk."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        script = Path(folder) / "request.lua"
        script.write_text(lua_script(headers, body))
        argv = [
            wrk_path(),
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s:g}s",
            "-s",
            str(script),
            url,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((row for row in done.stdout.splitlines() if row.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result (exit {done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    duration = raw["duration_us"] / 1e6
    return LoadResult(
        connections=connections,
        seconds=round(duration, 3),
        requests=raw["requests"],
        requests_per_s=round(raw["requests"] / duration, 1) if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3),
        max_ms=raw["max_us"] / 1000,
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        non_2xx=raw["status"],
    )
