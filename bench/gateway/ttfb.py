"""Time to first byte of a streamed answer, which wrk cannot measure: a small asyncio client.

One keep-alive connection (reopened if the server closes it) sends streamed requests one
after another. For each, the clock starts just before the request is written and stops
when the first bytes holding ``data:`` arrive (the first SSE event, as a client would see
it); the whole answer is then read to its end (chunked or Content-Length), which gives the
full stream's time too. Only 200 answers count in the percentiles; others are errors.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

MARKER = b"data:"
READ_SIZE = 65536


@dataclass(frozen=True)
class TtfbResult:
    requests: int
    errors: int
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    ttfb_mean_ms: float
    total_p50_ms: float
    total_p99_ms: float
    # The first answer's SSE events (``data:`` lines) and whether it ended with [DONE].
    sample_events: int
    sample_done: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Answer:
    status: int
    first_data_s: float | None
    total_s: float
    keep_alive: bool
    body: bytes


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def _request_bytes(url: str, headers: Mapping[str, str], body: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = body.encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class _Body:
    """Collects an answer's body, noting when ``data:`` first appears (even split across reads)."""

    def __init__(self, started: float, keep: bool) -> None:
        self.started = started
        self.keep = keep
        self.parts: list[bytes] = []
        self.tail = b""
        self.first_data_s: float | None = None

    def add(self, data: bytes) -> None:
        if self.first_data_s is None and MARKER in self.tail + data:
            self.first_data_s = time.perf_counter() - self.started
        self.tail = data[-(len(MARKER) - 1) :]
        if self.keep:
            self.parts.append(data)


async def _read_answer(reader: asyncio.StreamReader, started: float, *, keep_body: bool) -> _Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
    body = _Body(started, keep_body)
    keep_alive = headers.get("connection") != "close"
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            body.add((await reader.readexactly(size + 2))[:-2])
    elif "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining > 0:
            data = await reader.read(min(remaining, READ_SIZE))
            if not data:
                raise ConnectionError("the server closed the connection mid-answer")
            body.add(data)
            remaining -= len(data)
    else:
        keep_alive = False
        while data := await reader.read(READ_SIZE):
            body.add(data)
    total = time.perf_counter() - started
    return _Answer(status, body.first_data_s, total, keep_alive, b"".join(body.parts))


async def measure_ttfb(
    url: str,
    headers: Mapping[str, str],
    body: str,
    *,
    requests: int,
    seconds: float,
    warmup: int = 20,
) -> TtfbResult:
    """``warmup`` uncounted requests, then up to ``requests`` in at most ``seconds``, one at a time."""
    host, port, raw = _request_bytes(url, headers, body)
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    firsts: list[float] = []
    totals: list[float] = []
    errors = 0
    sample: bytes | None = None
    deadline: float | None = None
    sent = 0
    try:
        while sent < warmup + requests and (deadline is None or time.monotonic() < deadline):
            if sent == warmup:
                deadline = time.monotonic() + seconds
            if connection is None:
                connection = await asyncio.open_connection(host, port)
            reader, writer = connection
            started = time.perf_counter()
            writer.write(raw)
            try:
                answer = await _read_answer(reader, started, keep_body=sample is None)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError):
                if sent >= warmup:
                    errors += 1
                writer.close()
                connection = None
                sent += 1
                continue
            sent += 1
            if sample is None and answer.status == 200:
                sample = answer.body
            if not answer.keep_alive:
                writer.close()
                connection = None
            if sent <= warmup:
                continue
            if answer.status != 200 or answer.first_data_s is None:
                errors += 1
                continue
            firsts.append(answer.first_data_s * 1000)
            totals.append(answer.total_s * 1000)
    finally:
        if connection is not None:
            connection[1].close()
    if not firsts:
        raise RuntimeError(f"no streamed answer with a data: event from {url} ({errors} errors)")
    events = [line for line in (sample or b"").split(b"\n") if line.startswith(MARKER)]
    return TtfbResult(
        requests=len(firsts),
        errors=errors,
        ttfb_p50_ms=round(_percentile(firsts, 0.50), 3),
        ttfb_p99_ms=round(_percentile(firsts, 0.99), 3),
        ttfb_mean_ms=round(statistics.fmean(firsts), 3),
        total_p50_ms=round(_percentile(totals, 0.50), 3),
        total_p99_ms=round(_percentile(totals, 0.99), 3),
        sample_events=len(events),
        sample_done=bool(events) and events[-1].strip() == b"data: [DONE]",
    )


def run_ttfb(
    url: str, headers: Mapping[str, str], body: str, *, requests: int, seconds: float, warmup: int = 20
) -> TtfbResult:
    return asyncio.run(measure_ttfb(url, headers, body, requests=requests, seconds=seconds, warmup=warmup))
