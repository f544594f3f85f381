"""MCP on the wire (Streamable HTTP, 2025-11-25): the headers, JSON-RPC error answers, SSE
event framing, and the two rewrites the gateway makes to results (tools/list filtered by
the plan, tools/call's outcome noted for the usage record).

Nothing here talks to an upstream; proxy_mcp.py does, with these pieces.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from aiohttp import web

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
# Every released revision; a header naming another is refused (400). 2026-07-28 requests
# (stateless, no session) pass through to the upstream as they are.
KNOWN_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"})
# What the spec says to assume when a request carries no MCP-Protocol-Version header.
DEFAULT_VERSION = "2025-03-26"
# Request headers that cross to the upstream as the client sent them. Everything else (the
# consumer's key, cookies, Origin, Host) stays behind; the session id is swapped.
FORWARDED = ("Content-Type", "Last-Event-ID", "Mcp-Method", "Mcp-Name", "User-Agent")
# Response headers that cross back to the client (the session id is swapped).
RETURNED = ("Content-Type", "Cache-Control", "Allow", "Retry-After")
# 2026-07-28: routing headers that must repeat the body, checked by the gateway itself.
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
# The methods whose Mcp-Name mirrors a param, and which param (the mcp SDK's table too).
NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
SSE = "text/event-stream"
JSON_TYPE = "application/json"
BOTH = f"{JSON_TYPE}, {SSE}"

# JSON-RPC error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# The 2026-07-28 revision's code for an unsupported MCP-Protocol-Version (the mcp SDK's too).
UNSUPPORTED_VERSION = -32022
# The 2026-07-28 revision's code for Mcp-Method/Mcp-Name headers that disagree with the body.
HEADER_MISMATCH = -32020
# The gateway's own refusals (auth, quota, unknown server or session): the JSON-RPC server
# error range, with the HTTP status and a stable code in ``data``.
GATEWAY_REFUSAL = -32000

ANY_ID = object()
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


def rpc_error(
    status: int,
    code: int,
    message: str,
    *,
    request_id: object = None,
    data: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON-RPC error object as the whole body of an HTTP ``status`` answer."""
    error: dict[str, object] = {"code": code, "message": message}
    if data:
        error["data"] = dict(data)
    body = {"jsonrpc": "2.0", "id": request_id, "error": error}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=JSON_TYPE,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def refusal(status: int, message: str, reason: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """One of the gateway's own refusals: HTTP ``status`` with a -32000 JSON-RPC error body."""
    return rpc_error(status, GATEWAY_REFUSAL, message, data={"status": status, "reason": reason}, headers=headers)


def accepts_sse(accept: str) -> bool:
    """Whether the client takes an SSE answer. Lenient: a client naming only
    ``application/json`` gets JSON (the gateway collects an SSE answer for it); one naming
    ``*/*``, ``text/*``, nothing at all, or the SSE type gets the upstream's answer as is."""
    if not accept.strip():
        return True
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {SSE, "text/*", "*/*"})


@dataclass(frozen=True, slots=True)
class Message:
    """What the gateway needs of one JSON-RPC message sent by the client."""

    method: str  # "" for a response or an unreadable message
    request_id: object  # None for a notification
    params: dict[str, Any]

    @property
    def is_request(self) -> bool:
        return bool(self.method) and self.request_id is not None

    @property
    def tool_name(self) -> str | None:
        name = self.params.get("name")
        return name if self.method == "tools/call" and isinstance(name, str) else None


def parse_message(body: bytes) -> Message | web.Response:
    """The client's message, or the 400 JSON-RPC error that refuses it. Batches (a JSON
    array) are refused: 2025-06-18 removed them, and a batch would let a disallowed
    tools/call hide beside an allowed one."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return rpc_error(400, PARSE_ERROR, "Parse error: the body is not JSON.")
    if isinstance(decoded, list):
        return rpc_error(400, INVALID_REQUEST, "JSON-RPC batches are not supported; send one message per POST.")
    if not isinstance(decoded, dict) or decoded.get("jsonrpc") != "2.0":
        return rpc_error(400, INVALID_REQUEST, "Invalid Request: expected one JSON-RPC 2.0 message.")
    method = decoded.get("method")
    params = decoded.get("params")
    return Message(
        method=method if isinstance(method, str) else "",
        request_id=decoded.get("id"),
        params=params if isinstance(params, dict) else {},
    )


_B64 = re.compile(r"=\?base64\?(.*)\?=")


def _header_value(value: str) -> str | None:
    """A routing header's value: as sent, or decoded from the spec's ``=?base64?...?=``
    form (None when that form is malformed, so it matches nothing)."""
    match = _B64.fullmatch(value)
    if match is None:
        return value
    try:
        decoded = base64.b64decode(match.group(1), validate=True)
        return decoded.decode("utf-8") if base64.b64encode(decoded).decode() == match.group(1) else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def header_mismatch(message: Message, headers: Mapping[str, str]) -> web.Response | None:
    """The 400 (-32020) for an ``Mcp-Method`` that is not the body's method, or an
    ``Mcp-Name`` that is not its ``params.name`` (tools/call, prompts/get) or ``params.uri``
    (resources/read); None when they match or are absent."""
    method = headers.get(METHOD_HEADER)
    if method is not None and method != message.method:
        detail = f"The {METHOD_HEADER} header does not match the request body's method."
        return rpc_error(400, HEADER_MISMATCH, detail, request_id=message.request_id)
    name = headers.get(NAME_HEADER)
    key = NAME_PARAMS.get(message.method)
    if name is not None and key is not None and _header_value(name) != message.params.get(key):
        detail = f"The {NAME_HEADER} header does not match the request body's {key!r} parameter."
        return rpc_error(400, HEADER_MISMATCH, detail, request_id=message.request_id)
    return None


def filter_tools(message: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any] | None:
    """A tools/list response without the tools ``allowed`` leaves out; None if unchanged."""
    result = message.get("result")
    if not allowed or not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return None
    tools = result["tools"]
    kept = [tool for tool in tools if isinstance(tool, dict) and tool.get("name") in allowed]
    if len(kept) == len(tools):
        return None
    return {**message, "result": {**result, "tools": kept}}


def call_failed(message: dict[str, Any]) -> bool:
    """Whether a tools/call response reports a failure: a JSON-RPC error or ``isError: true``."""
    if "error" in message:
        return True
    result = message.get("result")
    return isinstance(result, dict) and result.get("isError") is True


def answers(message: object, request_id: object) -> TypeGuard[dict[str, Any]]:
    """Whether ``message`` is the response (result or error) to the request ``request_id``
    (to any request when ``request_id`` is ``ANY_ID``)."""
    return (
        isinstance(message, dict)
        and (request_id is ANY_ID or message.get("id") == request_id)
        and ("result" in message or "error" in message)
        and "method" not in message
    )


class SseEvents:
    """Splits an SSE byte stream into whole events (each with its blank-line terminator),
    so the gateway can rewrite one without ever holding more than one event."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self.pending += chunk
        while True:
            end = _EVENT_END.search(self.pending)
            if end is None:
                return
            event, self.pending = self.pending[: end.end()], self.pending[end.end() :]
            yield event


def event_data(event: bytes) -> object:
    """The JSON an SSE event's data lines carry; None when there is none (a comment, a
    priming event, or something that is not JSON)."""
    data = [line[5:].removeprefix(b" ") for line in _LINE.split(event) if line.startswith(b"data:")]
    if not data:
        return None
    try:
        return json.loads(b"\n".join(data))
    except ValueError:
        return None


def with_data(event: bytes, message: Mapping[str, Any]) -> bytes:
    """``event`` with its data replaced by ``message`` (its id and event lines kept)."""
    kept = [line for line in _LINE.split(event) if line and not line.startswith(b"data:")]
    kept.append(b"data: " + json.dumps(message, separators=(",", ":")).encode())
    return b"\n".join(kept) + b"\n\n"
