"""The wire of /v1: reading an OpenAI request body, and server-sent events in and out.

SSE in: ``SSEParser`` cuts the upstream's bytes into events as they arrive (CRLF or LF line
ends); nothing waits for more than one event. SSE out: every event the gateway sends carries
``id: <response_id>.<seq>``, so a client can name the last one it got (resume.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

Endpoint = Literal["chat", "completions", "embeddings"]
ENDPOINT_PATHS: dict[Endpoint, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}
DONE = b"[DONE]"
KEEPALIVE = b": keep-alive\n\n"

JSONObject = dict[str, Any]
_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()


class InvalidRequest(ValueError):
    """A body the gateway refuses with 400 invalid_request_error."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(slots=True)
class LlmRequest:
    endpoint: Endpoint
    body: JSONObject
    model: str
    stream: bool
    # What the client asked for; the gateway asks the upstream for usage either way.
    include_usage: bool
    max_tokens: int | None


def _optional_int(body: JSONObject, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest(f"{name} must be a non-negative integer", param=name, code="invalid_type")
    return int(value)


def parse_request(endpoint: Endpoint, raw: bytes) -> LlmRequest:
    """The request, checked as far as the gateway needs it; InvalidRequest otherwise."""
    try:
        body = _decode.decode(raw)
    except msgspec.DecodeError:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    model = body.get("model")
    if model is None or model == "":
        raise InvalidRequest("You must provide a model parameter.", param="model", code="missing_required_parameter")
    if not isinstance(model, str):
        raise InvalidRequest("model must be a string.", param="model", code="invalid_type")
    required = {"chat": "messages", "completions": "prompt", "embeddings": "input"}[endpoint]
    if body.get(required) is None:
        raise InvalidRequest(
            f"Missing required parameter: '{required}'.", param=required, code="missing_required_parameter"
        )
    if endpoint == "chat":
        messages = body["messages"]
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise InvalidRequest("messages must be a non-empty list of objects.", param="messages", code="invalid_type")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean.", param="stream", code="invalid_type")
    if stream and endpoint == "embeddings":
        raise InvalidRequest("Embeddings cannot be streamed.", param="stream", code="invalid_value")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("stream_options must be an object.", param="stream_options", code="invalid_type")
    include_usage = bool(stream and options and options.get("include_usage") is True)
    max_tokens = _optional_int(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens")
    return LlmRequest(
        endpoint=endpoint,
        body=body,
        model=model,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
    )


def upstream_body(request: LlmRequest, upstream_model: str) -> bytes:
    """The body for one upstream attempt: its model name, and usage asked for on streams."""
    body = dict(request.body)
    body["model"] = upstream_model
    if request.stream:
        options = body.get("stream_options")
        body["stream_options"] = {**(options or {}), "include_usage": True}
    return _encode.encode(body)


def decode_json(data: bytes) -> Any:
    """A JSON value, or None for what does not parse."""
    try:
        return _decode.decode(data)
    except msgspec.DecodeError:
        return None


def encode_json(value: object) -> bytes:
    return _encode.encode(value)


@dataclass(slots=True)
class SSEEvent:
    data: bytes  # the data lines, joined with "\n"
    event: bytes = b""  # the event field, if the upstream named one


class SSEParser:
    """Events from the bytes of a ``text/event-stream``, fed as they arrive. Comments and
    events without data (an upstream's keep-alives) are dropped; ids and retry hints too,
    since the gateway numbers the events it sends itself."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = _parse_block(buffer[start:end])
            if event is not None:
                events.append(event)
            start = end + 2
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[SSEEvent]:
        """What is left when the stream ends: a last event without its blank line."""
        rest, self._buffer = self._buffer.strip(), b""
        if not rest:
            return []
        event = _parse_block(rest)
        return [] if event is None else [event]


def _parse_block(block: bytes) -> SSEEvent | None:
    data: list[bytes] = []
    name = b""
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value
    if not data:
        return None
    return SSEEvent(data=b"\n".join(data), event=name)


def format_event(event_id: str, data: bytes, name: bytes = b"") -> bytes:
    head = b"id: " + event_id.encode() + b"\n"
    if name:
        head += b"event: " + name + b"\n"
    if b"\n" in data:
        return head + b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"
    return head + b"data: " + data + b"\n\n"
