"""Turning a failed MCP connection into a message a provider can act on.

The SDK reports most HTTP-level failures as a generic JSON-RPC error ("Server returned an
error response"), so `ResponseLog` records every HTTP response the transport receives, and
`explain_failure` reads both the exception and that log.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx2
from mcp import MCPError
from mcp_types import PARSE_ERROR
from pydantic import ValidationError

from marketplace.specs.errors import SpecError

__all__ = ["ResponseLog", "explain_failure"]


@dataclass(slots=True)
class ResponseLog:
    """The status and content type of every response seen, in order (an httpx2 event hook)."""

    responses: list[tuple[int, str]] = field(default_factory=list)

    async def record(self, response: httpx2.Response) -> None:
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        self.responses.append((response.status_code, content_type))


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, each followed by its causes."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
        return
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        yield from (arg for arg in current.args if isinstance(arg, BaseException))
        current = current.__cause__ or current.__context__


def explain_failure(exc: BaseException, *, url: str, timeout: float, log: ResponseLog) -> SpecError:
    """The SpecError that best explains why discovering ``url`` failed.

    In order: a SpecError raised by the discovery itself; credentials asked for (401/403);
    timeouts; DNS and connection failures; HTTP errors; answers that are not MCP; JSON-RPC
    errors; answers that break the MCP schema; anything else, with its own message.
    """
    errors = list(_leaves(exc))
    own = next((e for e in errors if isinstance(e, SpecError)), None)
    if own is not None:
        return own
    parts = urlsplit(url)
    host = parts.hostname or url
    statuses = [status for status, _ in log.responses]
    for status in (401, 403):
        if status in statuses:
            what = "refused the credentials it was given" if status == 403 else "asked for credentials"
            return SpecError(
                f"The server {what} (HTTP {status}): add the Authorization header or API key it expects.",
                field="headers",
            )
    if any(isinstance(e, TimeoutError | httpx2.TimeoutException) for e in errors):
        return SpecError(f"{url} gave no answer within {timeout:g} s.", field="url")
    for error in errors:
        if isinstance(error, httpx2.ConnectError):
            if any(isinstance(e, socket.gaierror) for e in errors):
                return SpecError(f"The host name {host!r} cannot be resolved (DNS lookup failed).", field="url")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return SpecError(f"Cannot connect to {host} port {port}: the connection was refused.", field="url")
        if isinstance(error, httpx2.TransportError) and not isinstance(error, httpx2.SSEError):
            return SpecError(f"The connection to {host} failed: {error or type(error).__name__}.", field="url")
    failing = [(s, t) for s, t in log.responses if s >= 400]
    if failing:
        status = failing[-1][0]
        return SpecError(
            f"The server answered HTTP {status} instead of speaking MCP: is {url} the MCP endpoint?", field="url"
        )
    foreign = [t for s, t in log.responses if t and t not in ("application/json", "text/event-stream")]
    if foreign or any(isinstance(e, httpx2.SSEError) for e in errors):
        kind = foreign[-1] if foreign else "something other than an event stream"
        return SpecError(f"This is not an MCP server: {url} answered with {kind}.", field="url")
    for error in errors:
        if isinstance(error, MCPError):
            if error.code == PARSE_ERROR:
                return SpecError(
                    f"This is not an MCP server: {url} answered with JSON that is not a JSON-RPC message.",
                    field="url",
                )
            return SpecError(f"The MCP server returned an error: {error.message} (code {error.code}).", field="url")
        if isinstance(error, ValidationError):
            return SpecError(
                f"The server's answer does not follow the MCP schema: {error.error_count()} problem(s), first: "
                f"{error.errors()[0]['msg']}.",
                field="url",
            )
    # Anything else, such as a refusal raised by an injected transport (an SSRF guard): its
    # own message is meant for the user.
    first = errors[0] if errors else exc
    reason = str(first).strip().rstrip(".") or type(first).__name__
    return SpecError(f"Discovering {url} failed: {reason}.", field="url")
