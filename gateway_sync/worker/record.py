"""What one gateway request did, told once to every observer when it ends.

The request path fills a ``RequestRecord`` as it learns things (the product, the caller,
the limiter's decision, the route and target, the status, the bytes) and, when the
response is finished (streamed bodies included), hands it to each ``RequestObserver``: the
usage emitter (usage_emitter.py) and the metrics (metrics.py). Observers must be cheap and
must never raise or wait: ``observe`` runs on the request path, after the last byte.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

Protocol_ = Literal["rest", "llm", "mcp", "a2a"]

# limit_decision values (bounded: they become metric labels).
LIMIT_ALLOWED = "allowed"  # every quota checked said yes
LIMIT_UNLIMITED = "unlimited"  # no quota applied to this request
LIMIT_LIMITED = "limited"  # a quota refused it (429)
LIMIT_DEGRADED_OPEN = "degraded_open"  # Redis down, the local fallback limiter admitted it
LIMIT_DEGRADED_CLOSED = "degraded_closed"  # Redis down and fail-closed: refused (429)

# upstream_error values (bounded), "" when the upstream answered.
UPSTREAM_TIMEOUT = "timeout"
UPSTREAM_UNREACHABLE = "unreachable"
UPSTREAM_BROKEN = "broken_stream"  # the response body broke off after the headers


@dataclass(slots=True, kw_only=True)
class RequestRecord:
    protocol: Protocol_
    method: str
    path: str
    # Wall clock for the event's time, the monotonic clock for its latency.
    at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    request_id: str = ""
    app_id: int | None = None
    key_prefix: str = ""
    product_id: int | None = None
    product_slug: str = ""
    version_id: int | None = None
    route_id: int | None = None
    target_id: int | None = None
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    attempts: int = 0
    limit_decision: str = LIMIT_UNLIMITED
    upstream_error: str = ""
    # Seconds from the start to the upstream's response headers; None if none came.
    upstream_latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_estimated: bool = False
    cost_microusd: int | None = None
    tool_name: str | None = None
    is_error: bool = False
    guardrail_actions: list[str] = field(default_factory=list)
    # The client went away before the response was complete (the usage event says 499).
    client_closed: bool = False
    # Set by finish(): seconds from the start to the last byte sent.
    duration_s: float = 0.0

    def finish(self) -> None:
        self.duration_s = time.perf_counter() - self.started


class RequestObserver(Protocol):
    def observe(self, record: RequestRecord) -> None:
        """Take note of a finished request; never raise, never block."""
